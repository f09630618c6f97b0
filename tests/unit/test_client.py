"""connect() against a fake Central on 127.0.0.1 that refuses every login at HELLO."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest

from common.client import (
    AuthenticationFailed,
    AuthenticationThrottled,
    CentralUnreachable,
    OwnerUnreachable,
    _order,
    connect,
    scrypt_floor,
)
from common.config import HostPort, parse_centrals
from common.protocol import Connection
from common.protocol.handshake import Role, moved_body, throttled_body
from common.protocol.messages import MessageType
from common.tcp import free_port, read_message


async def refuse_at_hello(body: Mapping[str, Any]) -> AuthenticationFailed:
    """Run a Central that answers HELLO with AUTH_FAILED ``body``; return what connect raised."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(time.time)
        hello = await read_message(reader, conn, writer.write)
        assert hello is not None and hello.type is MessageType.HELLO
        writer.write(conn.send(MessageType.AUTH_FAILED, dict(body)))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(AuthenticationFailed) as caught:
            await connect(HostPort("127.0.0.1", port), Role.MONITOR, "CP1", secret="s", timeout=5)
    finally:
        server.close()
        await server.wait_closed()
    return caught.value


def test_a_throttled_login_says_when_to_retry() -> None:
    error = asyncio.run(refuse_at_hello(throttled_body(17)))
    assert isinstance(error, AuthenticationThrottled)
    assert error.retry_after == 17
    assert str(error) == ("Central is delaying logins for CP1 after failed attempts; retry in 17 s")


def test_a_plain_refusal_is_not_throttled() -> None:
    error = asyncio.run(refuse_at_hello({"reason": "authentication failed"}))
    assert type(error) is AuthenticationFailed
    assert str(error) == "Central refused authentication of CP1"


@pytest.mark.parametrize(
    ("value", "floor"),
    [(None, 2**14), ("1024", 1024), ("16", 16), ("2**4", 2**14), ("1000", 2**14), ("1", 2**14),
     ("2097152", 2**14), ("32768", 2**15)],
)  # fmt: skip
def test_the_scrypt_floor_comes_from_this_process_only(value: str | None, floor: int) -> None:
    env = {} if value is None else {"EV_SCRYPT_MIN_N": value}
    assert scrypt_floor(env) == floor


# ------------------------------------------------------------ several Centrals
async def moved_to_closed_port(addrs: list[HostPort]) -> tuple[CentralUnreachable, list[int]]:
    """Centrals that each answer HELLO with ``moved`` to a port nobody listens on."""
    reached: list[int] = []
    dead = free_port()

    def serve_as(port_holder: list[int]) -> Any:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            reached.append(port_holder[0])
            conn = Connection(time.time)
            await read_message(reader, conn, writer.write)
            writer.write(conn.send(MessageType.AUTH_FAILED, moved_body(f"127.0.0.1:{dead}")))
            await writer.drain()
            writer.close()

        return serve

    servers = []
    for _ in range(2):
        holder: list[int] = []
        server = await asyncio.start_server(serve_as(holder), "127.0.0.1", 0)
        holder.append(server.sockets[0].getsockname()[1])
        servers.append(server)
    listening = [HostPort("127.0.0.1", s.sockets[0].getsockname()[1]) for s in servers]
    try:
        with pytest.raises(CentralUnreachable) as caught:
            await connect([*addrs, *listening], Role.ENGINE, "CP7", session_key=b"k" * 32)
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
    return caught.value, reached


def test_a_moved_login_follows_the_owner_and_every_address_is_tried() -> None:
    closed = HostPort("127.0.0.1", free_port())
    error, reached = asyncio.run(moved_to_closed_port([closed]))
    assert len(reached) == 2  # both live Centrals asked, the dead one skipped
    assert isinstance(error, OwnerUnreachable)  # the owner just failed: retry soon
    assert "which serves CP7" in str(error)


def test_the_first_central_tried_depends_on_the_id_only() -> None:
    addrs = [HostPort("10.0.0.1", 7000 + i) for i in range(4)]
    firsts = {_order(addrs, f"CP{i}")[0] for i in range(200)}
    assert firsts == set(addrs)  # a fleet spreads over every Central
    assert _order(addrs, "CP5") == _order(addrs, "CP5")
    assert sorted(_order(addrs, "CP5")) == sorted(addrs)


def test_central_lists_parse_and_print_as_given() -> None:
    addrs = parse_centrals("a:7000, b:7001,[::1]:7002")
    assert list(addrs) == [HostPort("a", 7000), HostPort("b", 7001), HostPort("::1", 7002)]
    assert str(addrs) == "a:7000,b:7001,[::1]:7002"
    for bad in ("", ",", "a", "a:7000,b"):
        with pytest.raises(ValueError):
            parse_centrals(bad)
