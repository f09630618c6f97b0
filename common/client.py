"""The client end of the wire protocol over asyncio: connect, authenticate, talk.

Used by the charge-point monitor and engine, the driver CLI, tests and the load
generator, so every peer speaks exactly the same protocol code as Central.

    link = await connect(addr, Role.DRIVER, "D1", secret=secret)   # or a list of Centrals
    link.send(MessageType.LIST_CPS, {})
    reply = await link.recv_until({MessageType.CP_LIST}, timeout=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import zlib
from collections.abc import Callable, Collection, Mapping, Sequence
from functools import partial
from typing import Any

from common.config import HostPort, parse_host_port
from common.errors import EVChargingError
from common.protocol import NEED_DATA, Connection, MessageReceived, Rejected
from common.protocol.errors import HandshakeError, ProtocolError
from common.protocol.handshake import (
    MOVED_CODE,
    THROTTLED_CODE,
    WEAK_PARAMS_CODE,
    ClientHandshake,
    Role,
)
from common.protocol.keys import CLIENT_MIN_N, scrypt_n_allowed
from common.protocol.messages import Message, MessageType, Side
from common.tcp import READ_CHUNK, read_message

__all__ = [
    "AuthenticationFailed",
    "AuthenticationThrottled",
    "CentralUnreachable",
    "ClientLink",
    "ConnectionClosed",
    "OwnerUnreachable",
    "WeakChallenge",
    "connect",
    "scrypt_floor",
]

SCRYPT_FLOOR_ENV = "EV_SCRYPT_MIN_N"


def scrypt_floor(env: Mapping[str, str] | None = None) -> int:
    """The lowest scrypt ``n`` (at r=8) this client accepts from Central.

    ``EV_SCRYPT_MIN_N`` (a power of two, 2 to 2**20) moves it: tests and benchmarks lower
    it, their credentials using a cheap cost. It is this process's own environment, so
    no peer can switch it on; a malformed value keeps the production floor.
    """
    env = os.environ if env is None else env
    text = env.get(SCRYPT_FLOOR_ENV, "")
    try:
        value = int(text)
    except ValueError:
        return CLIENT_MIN_N
    return value if scrypt_n_allowed(value) else CLIENT_MIN_N


class CentralUnreachable(EVChargingError):
    """No TCP connection could be made (or it broke during the handshake)."""


class OwnerUnreachable(CentralUnreachable):
    """A Central answered that another serves this CP, and that one is unreachable.

    It has most likely just failed: within seconds its lease expires and the CP may log
    in anywhere, so retry soon rather than backing off.
    """


class AuthenticationFailed(EVChargingError):
    """Central refused the credentials (or could not prove itself to us)."""


class AuthenticationThrottled(AuthenticationFailed):
    """Central did not check the credentials: it delays logins after failed attempts.

    The failures need not be ours (anyone may guess at an id), so this says nothing
    about the secret; try again after ``retry_after`` seconds.
    """

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WeakChallenge(AuthenticationFailed):
    """Central asked for a scrypt cost below this client's floor, so no proof was sent.

    A proof at such a cost could be brute-forced offline: this is a fake Central fishing
    for one, or a Central configured with a test-only cost. Not a verdict on the secret.
    """


class ConnectionClosed(EVChargingError):
    """The peer closed the connection."""


class ClientLink:
    """An authenticated, encrypted connection; a background task reads and ACKs."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: Connection,
        session_key: bytes,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.conn = conn
        self.session_key = session_key
        self._inbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self.rejected: list[ProtocolError] = []
        self.closed = False
        self._task = asyncio.create_task(self._pump())

    def send(self, msg_type: MessageType, body: Mapping[str, Any] | None = None) -> None:
        """Queue one message for sending (raises ConnectionClosed once closed)."""
        if self.closed:
            raise ConnectionClosed("connection closed")
        self._writer.write(self.conn.send(msg_type, body or {}))

    async def drain(self) -> None:
        await self._writer.drain()

    async def recv(self, timeout: float | None = None) -> Message:
        """The next message; raises ConnectionClosed at EOF, TimeoutError on timeout."""
        item = await asyncio.wait_for(self._inbox.get(), timeout)
        if item is None:
            self._inbox.put_nowait(None)  # later callers see the close too
            raise ConnectionClosed("Central closed the connection")
        return item

    async def recv_until(
        self, types: Collection[MessageType], timeout: float | None = None
    ) -> Message:
        """Skip messages until one of ``types`` arrives (others are dropped)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            msg = await self.recv(left)
            if msg.type in types:
                return msg

    async def _pump(self) -> None:
        try:
            while True:
                data = await self._reader.read(READ_CHUNK)
                if not data:
                    break
                self.conn.receive_data(data)
                while (event := self.conn.next_event()) is not NEED_DATA:
                    if isinstance(event, MessageReceived):
                        self._inbox.put_nowait(event.message)
                    elif isinstance(event, Rejected):
                        self.rejected.append(event.error)
                out = self.conn.data_to_send()
                if out:
                    self._writer.write(out)
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed = True
            self._inbox.put_nowait(None)

    async def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self.send(MessageType.BYE, {})
        self.closed = True
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task


async def _next_plain(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection
) -> Message:
    message = await read_message(reader, conn, writer.write)
    if message is None:
        raise ConnectionClosed("Central closed the connection during authentication")
    return message


def _order(addrs: Sequence[HostPort], principal_id: str) -> list[HostPort]:
    """Every address once, starting at one chosen by the id: peers spread over the
    Centrals evenly, and each peer comes back to the same one while it is up."""
    start = zlib.crc32(principal_id.encode()) % len(addrs)
    return [*addrs[start:], *addrs[:start]]


class _Moved(Exception):
    def __init__(self, addr: str) -> None:
        self.addr = addr


async def connect(
    addr: HostPort | Sequence[HostPort],
    role: Role,
    principal_id: str,
    *,
    secret: str | None = None,
    session_key: bytes | None = None,
    clock: Callable[[], float] = time.time,
    timeout: float = 10.0,
    min_scrypt_n: int | None = None,
) -> ClientLink:
    """Connect to Central and authenticate; ``addr`` may list several Centrals.

    With several, they are tried in an order that starts at one chosen by
    ``principal_id``; a Central that does not own a CP names the one that does
    (``moved``) and the login goes there (one hop). CentralUnreachable is raised only
    when none of them could be reached; OwnerUnreachable when one named an owner that
    could not be reached (it probably just failed: retry soon).

    ``min_scrypt_n``: refuse a challenge cheaper than scrypt at that ``n`` (r=8); by
    default :func:`scrypt_floor`, the production cost.

    Raises:
        CentralUnreachable: no connection, or it broke before authentication ended.
        AuthenticationFailed: Central refused us, or failed to prove it knows our verifier.
        WeakChallenge: Central asked for a scrypt cost below the floor (a fake Central
            fishing for a proof it could brute-force); nothing was sent.
        AuthenticationThrottled: Central delays logins for this id (or our address) after
            failed attempts; ``retry_after`` says when to try again.
    """
    addrs = [addr] if isinstance(addr, HostPort) else _order(addr, principal_id)
    login = partial(
        _connect_one,
        role=role,
        principal_id=principal_id,
        secret=secret,
        session_key=session_key,
        clock=clock,
        timeout=timeout,
        min_scrypt_n=min_scrypt_n,
    )
    unreachable: CentralUnreachable | None = None
    owner_gone: OwnerUnreachable | None = None
    for each in addrs:
        try:
            return await login(each)
        except CentralUnreachable as exc:
            unreachable = exc
        except _Moved as moved:
            try:
                return await login(parse_host_port(moved.addr))
            except (CentralUnreachable, _Moved, ValueError) as exc:
                owner_gone = OwnerUnreachable(
                    f"Cannot reach Central at {moved.addr}, which serves {principal_id}: {exc}"
                )
    failure = owner_gone or unreachable
    assert failure is not None
    raise failure


async def _connect_one(
    addr: HostPort,
    *,
    role: Role,
    principal_id: str,
    secret: str | None,
    session_key: bytes | None,
    clock: Callable[[], float],
    timeout: float,
    min_scrypt_n: int | None,
) -> ClientLink:
    """Open a TCP connection to one Central and authenticate (errors as :func:`connect`)."""
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(addr.host, addr.port, limit=READ_CHUNK), timeout
        )
    except (OSError, TimeoutError) as exc:
        if isinstance(exc, TimeoutError):
            reason = "timed out"
        else:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CentralUnreachable(f"Cannot reach Central at {addr}: {reason}") from None
    conn = Connection(clock)
    handshake = ClientHandshake(
        role,
        principal_id,
        secret=secret,
        session_key=session_key,
        clock=clock,
        min_n=scrypt_floor() if min_scrypt_n is None else min_scrypt_n,
    )
    try:
        hello = handshake.start()
        writer.write(conn.send(hello.type, hello.body))
        async with asyncio.timeout(timeout):
            while handshake.session_key is None:
                reply = handshake.receive(await _next_plain(reader, writer, conn))
                if reply is not None:
                    writer.write(conn.send(reply.type, reply.body))
    except ProtocolError as exc:
        writer.close()
        if isinstance(exc, HandshakeError) and exc.code == MOVED_CODE and exc.moved_to:
            raise _Moved(exc.moved_to) from None
        if isinstance(exc, HandshakeError) and exc.code == THROTTLED_CODE and exc.retry_after:
            raise AuthenticationThrottled(
                f"Central is delaying logins for {principal_id} after failed attempts; "
                f"retry in {exc.retry_after} s",
                retry_after=exc.retry_after,
            ) from exc
        if isinstance(exc, HandshakeError) and exc.code == WEAK_PARAMS_CODE:
            raise WeakChallenge(
                f"Central at {addr} asked for a weaker password hash than this client "
                f"accepts ({exc.message}): no proof sent. Either it is not the real "
                f"Central, or it runs with a test-only EV_SCRYPT_N (clients: {SCRYPT_FLOOR_ENV})"
            ) from exc
        raise AuthenticationFailed(f"Central refused authentication of {principal_id}") from exc
    except (ConnectionClosed, ConnectionError, TimeoutError) as exc:
        writer.close()
        raise CentralUnreachable(f"Cannot reach Central at {addr}: {exc or 'no answer'}") from None
    conn.secure(handshake.session_key, Side.CLIENT)
    return ClientLink(reader, writer, conn, handshake.session_key)
