"""Central's asyncio TCP server: one task per connection, the protocol at the edge.

Each connection authenticates (HELLO/CHALLENGE/PROOF/WELCOME), switches to the
encrypted channel, then its messages are handed to the :class:`~central.network.Network`.
Every frame is ACKed or NACKed; a peer that floods bad frames, stays silent in the
handshake or stops reading is dropped without affecting anybody else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from central.network import Network, NetworkError, history, pending_tickets
from central.store import DbWriter, load_cps, load_verifier
from common.db import Database
from common.events import Event, EventType, record
from common.protocol import Connection
from common.protocol.errors import ProtocolError
from common.protocol.handshake import HandshakeState, Role, ServerHandshake
from common.protocol.keys import DEFAULT_PARAMS, ScryptParams, Verifier, verifier_from_key
from common.protocol.messages import Message, MessageType, Side
from common.ratelimit import FailureLimiter
from common.tcp import MAX_BAD_FRAMES, ConnectionServer, read_message

__all__ = ["CentralServer", "PeerLink"]

log = logging.getLogger(__name__)

MAX_WRITE_BUFFER = 512 * 1024  # a peer this far behind is not reading: drop it
HANDSHAKE_TIMEOUT = 10.0
REFRESH_MARGIN = timedelta(seconds=30)


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
        # Online guessing: failed handshakes per principal and per source address.
        self.auth_limiter = FailureLimiter({"id": 5, "ip": 50}, window=60.0)
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
        if role is Role.MONITOR:
            await self._serve_monitor(reader, link, principal_id, key)
        elif role is Role.ENGINE:
            await self._serve_engine(reader, link, principal_id)
        else:
            await self._serve_driver(reader, link, principal_id)

    async def _handshake(
        self, reader: asyncio.StreamReader, link: PeerLink
    ) -> tuple[Role, str, bytes] | None:
        hello = await self._next_message(reader, link)
        if hello is None:
            return None
        principal = str(hello.body.get("id", ""))[:32]
        attempt = self.auth_limiter.begin([("id", principal), ("ip", link.peer_ip)])
        if not attempt.allowed:
            link.send(
                MessageType.AUTH_FAILED,
                {"reason": "too many failed attempts", "retry_after": attempt.retry_after},
            )
            self._audit_error(link, f"authentication locked out for {principal}")
            return None
        who = None
        try:
            who = await self._authenticate(reader, link, hello)
        finally:
            self.auth_limiter.end(attempt, failed=who is None)
        return who

    async def _authenticate(
        self, reader: asyncio.StreamReader, link: PeerLink, hello: Message
    ) -> tuple[Role, str, bytes] | None:
        verifier = await self._lookup(hello)
        handshake = ServerHandshake(
            lambda _role, _id: verifier, self._clock, decoy_params=self._params
        )
        try:
            reply = handshake.receive(hello)
            link.send(reply.type, reply.body)
            proof = await self._next_message(reader, link)
            if proof is None:
                return None
            reply = handshake.receive(proof)
        except ProtocolError as exc:
            self._auth_failed(link, handshake, f"{exc.code}: {exc}")
            link.send(MessageType.AUTH_FAILED, {"reason": "authentication failed"})
            return None
        link.send(reply.type, reply.body)
        if handshake.state is not HandshakeState.DONE or handshake.session_key is None:
            self._auth_failed(link, handshake, handshake.failed_reason or "failed")
            return None
        role, principal_id = handshake.role, handshake.principal_id
        assert role is not None and principal_id is not None
        self._auth_ok(link, role, principal_id)
        return role, principal_id, handshake.session_key

    async def _lookup(self, hello: Message) -> Verifier | None:
        role, principal_id = hello.body.get("role"), hello.body.get("id")
        if not isinstance(principal_id, str) or len(principal_id) > 32:
            return None
        if role == Role.ENGINE:
            key = self.network.engine_key(principal_id)
            return verifier_from_key(key) if key else None
        if role not in (Role.MONITOR, Role.DRIVER):
            return None
        kind = "driver" if role == Role.DRIVER else "cp"

        def read() -> Verifier | None:
            with self._db.transaction() as session:
                return load_verifier(session, kind, principal_id)

        verifier = await asyncio.get_running_loop().run_in_executor(None, read)
        if verifier is not None and role == Role.MONITOR and principal_id not in self.network.cps:
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
            with self._db.transaction() as session:
                return load_cps(session, since)

        rows = await asyncio.get_running_loop().run_in_executor(None, read)
        if rows:
            latest = max(row.updated_at for row in rows)
            if self._synced_up_to is None or latest > self._synced_up_to:
                self._synced_up_to = latest
        self.network.sync_registrations(rows)

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

    async def _serve_monitor(
        self, reader: asyncio.StreamReader, link: PeerLink, cp_id: str, key: bytes
    ) -> None:
        net = self.network
        try:
            net.monitor_up(cp_id, link, key)
        except NetworkError:
            link.send(MessageType.ERROR, {"reason": "unknown charge point"})
            return
        try:
            while (msg := await self._next_message(reader, link)) is not None:
                if msg.type is MessageType.HEARTBEAT:
                    net.heartbeat(
                        cp_id,
                        link,
                        bool(msg.body.get("engine_ok", True)),
                        str(msg.body.get("reason", "")),
                    )
                elif msg.type is MessageType.ENGINE_STATUS:
                    net.engine_health(
                        cp_id, link, bool(msg.body.get("ok")), str(msg.body.get("reason", ""))
                    )
                elif msg.type is MessageType.BYE:
                    break
                else:
                    net.refuse(link, f"{msg.type} is not a message a monitor sends", cp_id=cp_id)
        finally:
            net.monitor_lost(cp_id, link, link.close_reason or "monitor disconnected")

    async def _serve_engine(self, reader: asyncio.StreamReader, link: PeerLink, cp_id: str) -> None:
        net = self.network
        net.engine_up(cp_id, link)
        try:
            while (msg := await self._next_message(reader, link)) is not None:
                if msg.type is MessageType.BYE:
                    break
                await net.engine_message(cp_id, link, msg)
        finally:
            net.engine_lost(cp_id, link)

    async def _serve_driver(
        self, reader: asyncio.StreamReader, link: PeerLink, driver_id: str
    ) -> None:
        net = self.network
        net.driver_up(driver_id, link)
        pending: set[asyncio.Task[None]] = set()
        try:
            while (msg := await self._next_message(reader, link)) is not None:
                if msg.type is MessageType.CHARGE_REQUEST:
                    task = asyncio.create_task(self._driver_request(link, driver_id, msg))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                elif msg.type is MessageType.LIST_CPS:
                    link.send(MessageType.CP_LIST, {"cps": net.free_cps()})
                elif msg.type in (MessageType.HISTORY, MessageType.STATUS):
                    await self._driver_query(link, driver_id, msg.type)
                elif msg.type is MessageType.BYE:
                    break
                else:
                    net.refuse(
                        link, f"{msg.type} is not a message a driver sends", driver_id=driver_id
                    )
        finally:
            net.driver_lost(driver_id, link)

    async def _driver_request(self, link: PeerLink, driver_id: str, msg: Message) -> None:
        cp_id = str(msg.body.get("cp_id", ""))
        decision = await self.network.request_charge(
            cp_id, driver_id, msg.body.get("target_kwh"), link.peer_ip
        )
        # An authorisation reaches the driver from the network, the moment the engine agrees.
        if not decision.authorized:
            link.send(MessageType.CHARGE_DENIED, {"cp_id": cp_id, "reason": decision.reason})

    async def _driver_query(self, link: PeerLink, driver_id: str, kind: MessageType) -> None:
        fn = history if kind is MessageType.HISTORY else pending_tickets
        tickets = await self._writer.call(partial(fn, driver_id=driver_id))
        if kind is MessageType.HISTORY:
            link.send(MessageType.HISTORY, {"tickets": tickets})
        else:
            link.send(
                MessageType.STATUS,
                {"session": self.network.driver_session(driver_id), "missed_tickets": tickets},
            )
