"""The engine's side of the monitor ⇄ engine link: an authenticated, encrypted server.

The monitor authenticates with the site pairing key (role ``engine`` of the protocol's
key-based handshake, see docs/chargepoint.md); then, encrypted:

    monitor → engine   health_check {}            → health_reply {ok, reason?}
    monitor → engine   session_key {key}          the key Central issued to the monitor
    monitor → engine   engine_status {ok, reason} a technician marks the engine KO / OK
    engine → monitor   engine_status {ok, reason} the engine's health changed (pushed)

Every frame is ACKed or NACKed; one monitor at a time (a new one replaces the old).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from common.chargepoint.terminal import Level
from common.config import HostPort
from common.protocol import Connection
from common.protocol.errors import ProtocolError
from common.protocol.handshake import HandshakeState, Role
from common.protocol.handshake_server import ServerHandshake
from common.protocol.keys import Verifier, verifier_from_key
from common.protocol.messages import Message, MessageType, Side
from common.tcp import ConnectionServer, read_message

__all__ = ["MonitorHandler", "MonitorLinkServer"]

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT = 10.0


class MonitorHandler(Protocol):
    """What the link needs from the engine."""

    def health(self) -> dict[str, Any]: ...

    def session_key(self, key: bytes) -> None: ...

    def technician_health(self, ok: bool, reason: str) -> None: ...

    def monitor_changed(self, connected: bool) -> None: ...


def _log_rejected(error: ProtocolError) -> None:
    log.info("frame rejected", extra={"fields": {"code": error.code}})


class _Peer:
    """One monitor connection: framing, ACK/NACK, sending."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn

    def send(self, msg_type: MessageType, body: Mapping[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(self.conn.send(msg_type, body))

    async def next_message(self) -> Message | None:
        """The next accepted message; None at EOF or once the peer floods bad frames."""
        return await read_message(self.reader, self.conn, self._write, _log_rejected)

    def _write(self, data: bytes) -> None:
        if not self.writer.is_closing():
            self.writer.write(data)

    def close(self) -> None:
        self.writer.close()


class MonitorLinkServer:
    """Serves the monitor's link.

    Args:
        cp_id: this charge point; the monitor must claim it.
        pairing_key: the site key the monitor must prove.
        handler: the engine.
        notify: shows a line to the user.
        clock: seconds since the epoch.
    """

    def __init__(
        self,
        cp_id: str,
        pairing_key: bytes,
        handler: MonitorHandler,
        notify: Callable[[Level, str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._cp_id = cp_id
        self._verifier: Verifier = verifier_from_key(pairing_key)
        self._handler = handler
        self._notify = notify
        self._clock = clock
        self._tcp = ConnectionServer(self._accept, backlog=16)
        self._current: _Peer | None = None

    async def start(self, addr: HostPort) -> HostPort:
        return await self._tcp.start(addr.host, addr.port)

    @property
    def connected(self) -> bool:
        return self._current is not None

    def push(self, msg_type: MessageType, body: Mapping[str, Any]) -> None:
        """Send to the current monitor, if any."""
        if self._current is not None:
            self._current.send(msg_type, body)

    async def close(self) -> None:
        await self._tcp.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _Peer(reader, writer, Connection(self._clock))
        try:
            if await self._handshake(peer):
                await self._serve(peer)
        except (ConnectionError, OSError, TimeoutError):
            pass
        finally:
            peer.close()
            if self._current is peer:
                self._current = None
                self._handler.monitor_changed(False)
                self._notify(Level.WARN, "Monitor disconnected")

    def _lookup(self, role: Role, principal_id: str) -> Verifier | None:
        return self._verifier if role is Role.ENGINE and principal_id == self._cp_id else None

    async def _handshake(self, peer: _Peer) -> bool:
        handshake = ServerHandshake(self._lookup, self._clock, timeout=HANDSHAKE_TIMEOUT)
        try:
            async with asyncio.timeout(HANDSHAKE_TIMEOUT):
                for _ in range(2):  # HELLO, then PROOF
                    msg = await peer.next_message()
                    if msg is None:
                        return False
                    reply = handshake.receive(msg)
                    peer.send(reply.type, reply.body)
        except ProtocolError:
            peer.send(MessageType.AUTH_FAILED, {"reason": "authentication failed"})
        if handshake.state is not HandshakeState.DONE or handshake.session_key is None:
            self._notify(Level.BAD, "A monitor failed to authenticate (wrong pairing key?)")
            return False
        peer.conn.secure(handshake.session_key, Side.SERVER)
        return True

    async def _serve(self, peer: _Peer) -> None:
        old, self._current = self._current, peer
        if old is not None:
            old.close()
        else:
            self._handler.monitor_changed(True)
        self._notify(Level.GOOD, "Monitor connected")
        while (msg := await peer.next_message()) is not None:
            body = msg.body
            if msg.type is MessageType.HEALTH_CHECK:
                peer.send(MessageType.HEALTH_REPLY, self._handler.health())
            elif msg.type is MessageType.SESSION_KEY:
                key = body.get("key")
                if isinstance(key, str) and key.isascii() and key:
                    self._handler.session_key(key.encode("ascii"))
                else:
                    peer.send(MessageType.ERROR, {"reason": "malformed session key"})
            elif msg.type is MessageType.ENGINE_STATUS:
                self._handler.technician_health(bool(body.get("ok")), str(body.get("reason", "")))
            elif msg.type is MessageType.BYE:
                break
            else:
                peer.send(MessageType.ERROR, {"reason": f"{msg.type} is not expected here"})
