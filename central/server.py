"""Central's asyncio TCP server: one task per connection, the protocol at the edge.

Each connection authenticates (HELLO/CHALLENGE/PROOF/WELCOME), switches to the
encrypted channel, then each of its messages goes through :func:`central.routing.dispatch`
for the identity it proved. Every frame is ACKed or NACKed; a peer that floods bad
frames, stays silent in the handshake or stops reading is dropped without affecting
anybody else. Failed proofs slow further logins down (:mod:`central.throttle`); a
handshake that is abandoned or times out is not a guess and costs the id nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from central import routing
from central.errors import CentralError
from central.network import Network
from central.routing import Peer
from central.store import load_cps, load_verifier
from central.throttle import LoginThrottle, login_keys
from central.writer import DbWriter
from common.db import Database
from common.events import Event, EventType, record
from common.protocol import Connection
from common.protocol.errors import ProtocolError
from common.protocol.handshake import HandshakeState, Role, ServerHandshake, throttled_body
from common.protocol.keys import DEFAULT_PARAMS, ScryptParams, Verifier, verifier_from_key
from common.protocol.messages import Message, MessageType, Side
from common.tcp import MAX_BAD_FRAMES, ConnectionServer, read_message

__all__ = ["CentralServer", "PeerLink"]

log = logging.getLogger(__name__)

MAX_WRITE_BUFFER = 512 * 1024  # a peer this far behind is not reading: drop it
HANDSHAKE_TIMEOUT = 10.0
REFRESH_MARGIN = timedelta(seconds=30)
# Why a proof failed, as ServerHandshake says: these are guesses; anything else is not.
_GUESSES = frozenset({"bad proof", "unknown principal", "malformed proof"})


class PeerLink:
    """A connected, authenticated (or authenticating) peer; implements ``network.Link``."""

    def __init__(self, writer: asyncio.StreamWriter, conn: Connection, peer_ip: str) -> None:
        self._writer = writer
        self.conn = conn
        self.peer_ip = peer_ip
        self.closed = False
        self.close_reason = ""

    def send(self, msg_type: MessageType, body: Mapping[str, Any]) -> None:
        if self.closed:
            return
        try:
            self._writer.write(self.conn.send(msg_type, body))
        except ProtocolError:
            log.exception("cannot encode %s", msg_type)
            return
        self._check_buffer()

    def write_raw(self, data: bytes) -> None:
        if data and not self.closed:
            self._writer.write(data)
            self._check_buffer()

    def _check_buffer(self) -> None:
        if self._writer.transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning(
                "peer is not reading; dropping it", extra={"fields": {"peer": self.peer_ip}}
            )
            self.closed = True
            self.close_reason = "peer not reading"
            self._writer.transport.abort()

    def close(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self._writer.close()


class CentralServer:
    """Accepts monitors, engines and drivers and connects them to the network."""

    def __init__(
        self,
        network: Network,
        writer: DbWriter,
        db: Database,
        *,
        clock: Callable[[], float] = time.time,
        scrypt_params: ScryptParams = DEFAULT_PARAMS,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        self.network = network
        self._writer = writer
        self._db = db
        self._clock = clock
        self._params = scrypt_params
        self._handshake_timeout = handshake_timeout
        self._tcp = ConnectionServer(self._accept)
        # Online guessing: growing delays after failed proofs, per (role, id) and address.
        self.throttle = LoginThrottle()
        self._synced_up_to: datetime | None = None  # newest updated_at seen by a refresh

    async def start(self, host: str, port: int) -> tuple[str, int]:
        return await self._tcp.start(host, port)

    async def close(self) -> None:
        await self._tcp.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        link = PeerLink(writer, Connection(self._clock), str(peer[0]) if peer else "?")
        try:
            await self._serve(reader, link)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            log.exception("connection handler failed", extra={"fields": {"peer": link.peer_ip}})
        finally:
            link.close("connection ended")

    async def _next_message(self, reader: asyncio.StreamReader, link: PeerLink) -> Message | None:
        """Read until one message arrives; ACK/NACK as we go. None at EOF or on a flood."""
        message = await read_message(
            reader, link.conn, link.write_raw, lambda error: self._rejected(link, error)
        )
        if message is None and link.conn.rejected_count > MAX_BAD_FRAMES:
            self._audit_error(link, "too many bad frames; connection dropped")
            link.close("too many bad frames")
        return message

    def _rejected(self, link: PeerLink, error: ProtocolError) -> None:
        log.info(
            "frame rejected",
            extra={"fields": {"peer": link.peer_ip, "code": error.code, "error": str(error)}},
        )
        if link.conn.rejected_count in (1, MAX_BAD_FRAMES):
            self._audit_error(link, f"rejected frame: {error.code}")

    def _audit_error(self, link: PeerLink, reason: str, **who: Any) -> None:
        self._writer.submit(
            partial(
                record,
                event=Event(
                    EventType.ERROR, "central", {"reason": reason}, source_ip=link.peer_ip, **who
                ),
            )
        )

    async def _serve(self, reader: asyncio.StreamReader, link: PeerLink) -> None:
        try:
            who = await asyncio.wait_for(self._handshake(reader, link), self._handshake_timeout)
        except TimeoutError:
            self._audit_error(link, "handshake timed out")
            return
        if who is None:
            return
        role, principal_id, key = who
        link.conn.secure(key, Side.SERVER)
        peer = Peer(role, principal_id, link)
        try:
            self._connected(peer, key)
        except CentralError as exc:
            link.send(MessageType.ERROR, exc.body().to_body())
            return
        try:
            await self._read_loop(reader, peer, link)
        finally:
            self._disconnected(peer, link.close_reason)

    def _connected(self, peer: Peer, key: bytes) -> None:
        net = self.network
        if peer.role is Role.MONITOR:
            net.chargepoints.monitor_up(peer.id, peer.link, key)
        elif peer.role is Role.ENGINE:
            net.chargepoints.engine_up(peer.id, peer.link)
        else:
            net.fleet.driver_up(peer.id, peer.link)

    def _disconnected(self, peer: Peer, why: str) -> None:
        net, link = self.network, peer.link
        if peer.role is Role.MONITOR:
            net.chargepoints.monitor_lost(peer.id, link, why or "monitor disconnected")
        elif peer.role is Role.ENGINE:
            net.chargepoints.engine_lost(peer.id, link)
        else:
            net.fleet.driver_lost(peer.id, link)

    async def _read_loop(self, reader: asyncio.StreamReader, peer: Peer, link: PeerLink) -> None:
        pending: set[asyncio.Task[None]] = set()
        while (msg := await self._next_message(reader, link)) is not None:
            if msg.type is MessageType.BYE:
                break
            route = routing.route(peer.role, msg.type)
            handling = routing.dispatch(self.network, peer, msg, route)
            if route is not None and route.background:
                task = asyncio.create_task(handling)
                pending.add(task)
                task.add_done_callback(pending.discard)
            else:
                await handling

    async def _handshake(
        self, reader: asyncio.StreamReader, link: PeerLink
    ) -> tuple[Role, str, bytes] | None:
        hello = await self._next_message(reader, link)
        if hello is None:
            return None
        role, principal = str(hello.body.get("role", ""))[:16], str(hello.body.get("id", ""))[:32]
        keys = login_keys(role, principal, link.peer_ip)
        if self._throttled(link, keys, f"{role} {principal}"):
            return None
        verifier = await self._lookup(hello)
        handshake = ServerHandshake(
            lambda _role, _id: verifier, self._clock, decoy_params=self._params
        )
        try:
            reply = handshake.receive(hello)
            link.send(reply.type, reply.body)
            proof = await self._next_message(reader, link)
            if proof is None or self._throttled(link, keys, f"{role} {principal}"):
                return None  # abandoned, or a proof that is not checked: no guess made
            reply = handshake.receive(proof)
        except ProtocolError as exc:
            self._auth_failed(link, handshake, f"{exc.code}: {exc}")
            link.send(MessageType.AUTH_FAILED, {"reason": "authentication failed"})
            return None
        link.send(reply.type, reply.body)
        if handshake.state is not HandshakeState.DONE or handshake.session_key is None:
            reason = handshake.failed_reason or "failed"
            if reason in _GUESSES:
                self.throttle.failed(keys)
            self._auth_failed(link, handshake, reason)
            return None
        self.throttle.succeeded(keys)
        assert handshake.role is not None and handshake.principal_id is not None
        self._auth_ok(link, handshake.role, handshake.principal_id)
        return handshake.role, handshake.principal_id, handshake.session_key

    def _throttled(self, link: PeerLink, keys: Any, who: str) -> bool:
        """Refuse the login now if any key is still in its delay; True if refused."""
        wait = self.throttle.wait(keys)
        if wait:
            link.send(MessageType.AUTH_FAILED, throttled_body(wait))
            self._audit_error(link, f"login of {who} delayed {wait} s after failed attempts")
        return wait > 0

    async def _lookup(self, hello: Message) -> Verifier | None:
        role, principal_id = hello.body.get("role"), hello.body.get("id")
        if not isinstance(principal_id, str) or len(principal_id) > 32:
            return None
        if role == Role.ENGINE:
            key = self.network.chargepoints.engine_key(principal_id)
            return verifier_from_key(key) if key else None
        if role not in (Role.MONITOR, Role.DRIVER):
            return None
        kind = "driver" if role == Role.DRIVER else "cp"

        def read() -> Verifier | None:
            with self._db.read() as session:
                return load_verifier(session, kind, principal_id)

        verifier = await asyncio.get_running_loop().run_in_executor(None, read)
        if (
            verifier is not None
            and role == Role.MONITOR
            and principal_id not in self.network.fleet.cps
        ):
            await self.network_refresh()
        return verifier

    async def network_refresh(self) -> None:
        """Pick up registrations at once (a CP registered a moment ago may connect now).

        Only rows changed since the last refresh (with a margin for clocks and slow
        commits) are read: with 10,000 CPs, loading them all every 2 s cost more CPU
        than the heart-beats. Applying a row twice is harmless.
        """
        since = None if self._synced_up_to is None else self._synced_up_to - REFRESH_MARGIN

        def read() -> list[Any]:
            with self._db.read() as session:
                return load_cps(session, since)

        rows = await asyncio.get_running_loop().run_in_executor(None, read)
        if rows:
            latest = max(row.updated_at for row in rows)
            if self._synced_up_to is None or latest > self._synced_up_to:
                self._synced_up_to = latest
        self.network.chargepoints.sync_registrations(rows)

    def _auth_ok(self, link: PeerLink, role: Role, principal_id: str) -> None:
        is_driver = role is Role.DRIVER
        event = Event(
            EventType.DRIVER_AUTHENTICATED if is_driver else EventType.CP_AUTHENTICATED,
            "central",
            {"role": str(role)},
            cp_id=None if is_driver else principal_id,
            driver_id=principal_id if is_driver else None,
            actor=principal_id,
            source_ip=link.peer_ip,
        )
        self._writer.submit(partial(record, event=event))

    def _auth_failed(self, link: PeerLink, handshake: ServerHandshake, reason: str) -> None:
        role, principal_id = handshake.role, handshake.principal_id or "?"
        is_driver = role is Role.DRIVER
        log.warning(
            "authentication failed",
            extra={
                "fields": {"peer": link.peer_ip, "role": role, "id": principal_id, "reason": reason}
            },
        )
        event = Event(
            EventType.DRIVER_AUTH_FAILED if is_driver else EventType.CP_AUTH_FAILED,
            "central",
            {"role": str(role) if role else None, "reason": reason},
            cp_id=None if is_driver or principal_id == "?" else principal_id,
            driver_id=principal_id if is_driver else None,
            actor=principal_id,
            source_ip=link.peer_ip,
        )
        self._writer.submit(partial(record, event=event))
