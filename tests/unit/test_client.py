"""connect() against a fake Central on 127.0.0.1 that refuses every login at HELLO."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest

from common.client import AuthenticationFailed, AuthenticationThrottled, connect, scrypt_floor
from common.config import HostPort
from common.protocol import Connection
from common.protocol.handshake import Role, throttled_body
from common.protocol.messages import MessageType
from common.tcp import read_message


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
