"""Slow clients against a real ``ev-registry``: they must not starve real registrations.

The attack (before the fix): two clients, each opening 16 TLS connections and sending
one header byte every second, held all 16 worker threads, since cheroot's timeout is per
read; real registrations waited more than 20 s. Attackers here come from 127.0.0.2 and
127.0.0.3 (Linux routes all of 127/8 to the loopback), the real clients from 127.0.0.1.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.test_registry import PROV, Registry, start_registry
from tests.integration.test_registry import registry as registry  # the module's fixture
from tests.support.broker import wait_until

pytestmark = pytest.mark.integration

SLOW_HEAD = b"POST /api/chargepoints HTTP/1.1\r\nHost: localhost\r\n" + b"X-Slow: y\r\n" * 100


def _loopback_alias(address: str) -> None:
    """Skip when this machine cannot use ``address`` as a source (not Linux, say)."""
    probe = socket.socket()
    try:
        probe.bind((address, 0))
    except OSError as exc:
        pytest.skip(f"cannot bind {address} as a client address: {exc.strerror}")
    finally:
        probe.close()


class SlowClient:
    """``count`` connections from ``source`` trickling a request head, one byte a second.

    With ``tls`` they finish the TLS handshake first (a worker does it), else they speak
    plain HTTP to the HTTPS port (the refusal path). ``held`` counts connections that got
    that far; ``cut`` records, per connection the server closed, how long it had lived.
    """

    def __init__(self, reg: Registry, source: str, count: int, *, tls: bool = True) -> None:
        _loopback_alias(source)
        self._port = reg.port
        self._ctx = ssl.create_default_context(cafile=str(reg.ca)) if tls else None
        self._source = source
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.held = 0
        self.cut: list[float] = []
        self._threads = [
            threading.Thread(target=self._one, daemon=True, name=f"slow-{source}-{i}")
            for i in range(count)
        ]

    def __enter__(self) -> SlowClient:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _one(self) -> None:
        opened = time.monotonic()
        try:
            with contextlib.ExitStack() as stack:
                sock = stack.enter_context(
                    socket.create_connection(
                        ("127.0.0.1", self._port), timeout=30, source_address=(self._source, 0)
                    )
                )
                if self._ctx is not None:
                    sock = stack.enter_context(
                        self._ctx.wrap_socket(sock, server_hostname="localhost")
                    )
                with self._lock:
                    self.held += 1
                for byte in SLOW_HEAD:
                    if self._stop.wait(1.0):
                        return
                    sock.sendall(bytes([byte]))
                    if self._ctx is None:
                        _raise_if_closed(sock)
        except OSError:  # reset, EOF during the handshake, broken pipe: the server cut us
            with self._lock:
                self.cut.append(time.monotonic() - opened)


def _closed(sock: socket.socket) -> bool:
    """Has the server closed ``sock``? (A peek that does not block.)"""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(timeout)


def _raise_if_closed(sock: socket.socket) -> None:
    """A plain socket sees the server's close only on read."""
    if _closed(sock):
        raise ConnectionResetError("closed by the server")


def _register_many(reg: Registry, prefix: str, count: int) -> list[int]:
    """``count`` registrations at once from 127.0.0.1; each must answer within 5 s."""

    def one(i: int) -> int:
        body = {"id": f"{prefix}-{i}", "location": "Madrid"}
        headers = {"Authorization": f"Bearer {PROV}"}
        with requests.Session() as http:  # one per thread: a Session is not thread-safe
            response = http.post(
                reg.url + "/api/chargepoints", json=body, headers=headers,
                verify=str(reg.ca), timeout=5,
            )  # fmt: skip
            return response.status_code

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_slow_clients_do_not_starve_real_registrations(registry: Registry) -> None:
    with (
        SlowClient(registry, "127.0.0.2", 16) as first,
        SlowClient(registry, "127.0.0.3", 16) as second,
    ):
        # The attack is on once they hold 8 workers (4 each, their share, with the fix).
        wait_until(lambda: first.held + second.held >= 8, 15, "the slow clients' handshakes")
        started = time.monotonic()
        statuses = _register_many(registry, f"SLOW-{registry.db_url[:6]}", 20)
        took = time.monotonic() - started
        assert statuses == [201] * 20
        # Only their share: the rest of each address's connections wait without a worker.
        assert first.held <= 4 and second.held <= 4
    print(f"20 registrations under attack: {took:.2f} s")


@pytest.fixture
def quick_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry of its own with a 2 s head deadline, so the test does not wait 10 s."""
    reg = start_registry(tmp_path, f"sqlite:///{tmp_path / 'evcharging.db'}", "--head-timeout", "2")
    try:
        yield reg
    finally:
        assert reg.process.stop() == 0


def test_a_slow_request_head_is_cut_at_the_deadline(quick_registry: Registry) -> None:
    reg = quick_registry
    with (
        SlowClient(reg, "127.0.0.2", 6) as tls,
        SlowClient(reg, "127.0.0.3", 6, tls=False) as plain,
    ):
        # Every connection is closed by the server: those in a worker at the head
        # deadline, those waiting for their address's turn at theirs too.
        wait_until(lambda: len(tls.cut) == 6 and len(plain.cut) == 6, 20, "the server's cuts")
        assert tls.held == 4  # the address's share got through the handshake...
        assert max(tls.cut + plain.cut) < 10  # ...and none lived on (it takes 19 min to send)
    assert "request head too slow" in reg.process.output()
    # The workers are free again.
    assert _register_many(reg, "AFTER", 8) == [201] * 8
    assert reg.call("GET", "/api/health").json() == {"status": "ok"}


def test_too_many_connections_from_one_address_are_refused(quick_registry: Registry) -> None:
    reg = quick_registry
    _loopback_alias("127.0.0.4")
    # 4 served at once, 64 more may wait: the 69th and later are closed at accept.
    socks = [
        socket.create_connection(("127.0.0.1", reg.port), source_address=("127.0.0.4", 0))
        for _ in range(72)
    ]
    try:

        def refused() -> int:
            return sum(_closed(sock) for sock in socks)

        wait_until(lambda: refused() >= 72 - 68, 5, "the connections past the cap refused")
        assert refused() == 72 - 68  # and only those: the others are served or waiting
        # Another address is not affected.
        assert reg.call("GET", "/api/health").status_code == 200
    finally:
        for sock in socks:
            sock.close()
