"""The slow-client guard's bookkeeping, with fake connections and a fake clock."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from common.http_guard import ConnectionLimits, _Guard
from tests.support.clock import FakeClock

_MADE: list[FakeConn] = []


@pytest.fixture(autouse=True)
def _close_sockets() -> Iterator[None]:
    yield
    while _MADE:
        conn = _MADE.pop()
        conn.socket.close()
        conn.peer.close()


class FakeConn:
    def __init__(self, addr: str) -> None:
        self.remote_addr = addr
        self.closed = False
        a, b = socket.socketpair()
        self.socket, self.peer = a, b
        _MADE.append(self)

    def close(self) -> None:
        self.closed = True


def make(per_address: int | None = 2, waiting: int = 2) -> tuple[_Guard, list[FakeConn], FakeClock]:
    served: list[FakeConn] = []
    clock = FakeClock()
    guard = _Guard(
        ConnectionLimits(head_timeout=10, per_address=per_address, waiting_per_address=waiting),
        served.append,
        clock,
    )
    return guard, served, clock


def test_an_address_gets_its_share_and_the_rest_wait_their_turn() -> None:
    guard, served, _ = make()
    conns = [FakeConn("10.0.0.1") for _ in range(4)]
    other = FakeConn("10.0.0.2")
    for conn in [*conns, other]:
        guard.admit(conn)
    assert served == [conns[0], conns[1], other]  # 2 for the first address, waiting: 2
    guard.release(conns[0])
    assert served[-1] is conns[2]
    guard.release(conns[1])
    assert served[-1] is conns[3]


def test_past_the_waiting_room_new_connections_are_closed() -> None:
    guard, served, _ = make(per_address=1, waiting=1)
    first, second, third = (FakeConn("10.0.0.1") for _ in range(3))
    for conn in (first, second, third):
        guard.admit(conn)
    assert served == [first] and third.closed and not second.closed
    guard.closed(first)  # closing frees the slot in the count of open connections
    fourth = FakeConn("10.0.0.1")
    guard.admit(fourth)
    assert not fourth.closed


def test_a_kept_alive_connection_is_counted_once() -> None:
    guard, served, _ = make(per_address=1, waiting=0)
    conn = FakeConn("10.0.0.1")
    for _ in range(3):  # three requests on one connection
        guard.admit(conn)
        guard.release(conn)
    assert served == [conn, conn, conn] and not conn.closed


def test_the_deadline_cuts_waiting_and_busy_heads_but_not_finished_ones() -> None:
    guard, _, clock = make(per_address=2, waiting=4)
    busy, done, waiting = FakeConn("10.0.0.1"), FakeConn("10.0.0.1"), FakeConn("10.0.0.1")
    for conn in (busy, done, waiting):
        guard.admit(conn)
    guard.head_read(done)
    clock.now += 9.9
    guard.reap()
    assert not waiting.closed
    with pytest.raises(BlockingIOError):
        busy.peer.recv(1, socket.MSG_DONTWAIT)  # not yet
    clock.now += 0.2
    guard.reap()
    assert waiting.closed  # closed by the guard: it never had a worker
    assert busy.peer.recv(1) == b""  # shut down: the worker's read returns
    done.peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        done.peer.recv(1)  # untouched


def test_without_a_cap_only_the_deadline_applies() -> None:
    guard, served, _ = make(per_address=None)
    conns = [FakeConn("10.0.0.1") for _ in range(100)]
    for conn in conns:
        guard.admit(conn)
    assert served == conns


def test_an_attacker_cannot_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    guard, _, clock = make(per_address=1, waiting=0)
    caplog.set_level("INFO", logger="common.http_guard")
    first = FakeConn("10.0.0.9")
    guard.admit(first)
    for _ in range(50):
        guard.admit(FakeConn("10.0.0.9"))  # each refused at accept
    assert len(caplog.records) == 1
    clock.now += 61
    guard.admit(FakeConn("10.0.0.9"))
    assert len(caplog.records) == 2
    assert caplog.records[1].fields["since_last_line"] == 49  # type: ignore[attr-defined]
