"""Central's asyncio TCP server: protocol callbacks per connection, the protocol at the edge.

Each connection authenticates (HELLO/CHALLENGE/PROOF/WELCOME, in a task of its own),
switches to the encrypted channel, then each of its messages goes through
:func:`central.routing.dispatch_now` for the identity it proved, straight from the
loop's read callback: with 20,000 connections a task and a stream per connection cost
more than the messages. Every frame is ACKed or NACKed; a peer that floods bad
frames, stays silent in the handshake or stops reading is dropped without affecting
anybody else. Failed proofs slow further logins down (:mod:`central.throttle`); a
handshake that is abandoned or times out is not a guess and costs the id nothing.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from central import routing
from central.errors import CentralError
from central.network import Network
from central.peer import PeerLink, PeerProtocol
from central.reads import load_cps
from central.routing import Peer
from central.throttle import LoginThrottle, login_keys
from central.verifiers import VerifierLookups
from central.writer import DbWriter

if TYPE_CHECKING:
    from central.cluster import Cluster
from common.db import Database
from common.events import Event, EventType, record
from common.protocol.errors import ProtocolError
from common.protocol.handshake import (
    HandshakeState,
    Role,
    moved_body,
    throttled_body,
)
from common.protocol.handshake_server import ServerHandshake
from common.protocol.keys import DEFAULT_PARAMS, ScryptParams, Verifier, verifier_from_key
from common.protocol.messages import Message, MessageType, Side
from common.tcp import MAX_BAD_FRAMES

__all__ = ["CentralServer"]

log = logging.getLogger(__name__)

BACKLOG = 4096  # connections the kernel queues while Central is busy (a connect storm)
FD_RESERVE = 256  # descriptors kept for API_Central, the database, logs, OCPP
FULL_WARNING_EVERY = 10.0  # seconds between "connections full" warnings


def connection_capacity() -> int:
    """How many peers the open-file limit leaves room for, keeping :data:`FD_RESERVE`.

    Past it, ``accept`` would fail with EMFILE, and every other part of Central that
    opens a file or a socket (API_Central's server, the database) with it.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 1 << 20
    return max(16, soft - FD_RESERVE)


HANDSHAKE_TIMEOUT = 10.0
REFRESH_MARGIN = timedelta(seconds=30)
# Why a proof failed, as ServerHandshake says: these are guesses; anything else is not.
_GUESSES = frozenset({"bad proof", "unknown principal", "malformed proof"})


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
        max_connections: int | None = None,
    ) -> None:
        self.network = network
        self.max_connections = connection_capacity() if max_connections is None else max_connections
        self._full_warned_at = -FULL_WARNING_EVERY
        self._writer = writer
        self._db = db
        self.clock = clock
        self._params = scrypt_params
        self._handshake_timeout = handshake_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[PeerProtocol] = set()
        self._handshakes: set[asyncio.Task[None]] = set()
        self._background: set[asyncio.Future[None]] = set()  # charge requests in flight
        # Online guessing: growing delays after failed proofs, per (role, id) and address.
        self.throttle = LoginThrottle()
        self.verifiers = VerifierLookups(db)  # the OCPP listener asks through it too
        self._synced_up_to: datetime | None = None  # newest updated_at seen by a refresh
        self._applied: dict[str, datetime] = {}  # each CP row's updated_at, as applied
        self.cluster: Cluster | None = None  # several Centrals: who serves each CP

    async def start(self, host: str, port: int, *, serving: bool = True) -> tuple[str, int]:
        """Listen (port 0: any free port); returns the bound address.

        ``serving=False`` binds without accepting yet (:meth:`serve` starts): a process
        joining a cluster needs its address before it may take anyone in.
        """
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: PeerProtocol(self),
            host,
            port,
            backlog=BACKLOG,
            reuse_address=True,
            start_serving=serving,
        )
        sock = self._server.sockets[0].getsockname()
        return str(sock[0]), int(sock[1])

    async def serve(self) -> None:
        assert self._server is not None
        await self._server.start_serving()

    async def close(self) -> None:
        """Stop listening and end every connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        for protocol in list(self._connections):
            if protocol.link is not None:
                protocol.link.close("Central shutting down")

    # -- connections (called by PeerProtocol)
    def opened(self, protocol: PeerProtocol) -> None:
        assert protocol.link is not None
        if len(self._connections) >= self.max_connections:
            self._full(protocol.link)
            return
        self._connections.add(protocol)
        task = asyncio.ensure_future(self._authenticate(protocol))
        self._handshakes.add(task)
        task.add_done_callback(self._handshakes.discard)

    def closed(self, protocol: PeerProtocol) -> None:
        self._connections.discard(protocol)

    def _full(self, link: PeerLink) -> None:
        """No room for another peer: close it at once (it retries), say so now and then."""
        link.close("Central is full")
        now = time.monotonic()
        if now - self._full_warned_at >= FULL_WARNING_EVERY:
            self._full_warned_at = now
            log.warning(
                "connection refused: Central holds as many connections as its open-file "
                "limit allows; raise the limit (LimitNOFILE=, docker --ulimit nofile=) or add "
                "a Central",
                extra={"fields": {"connections": len(self._connections), "peer": link.peer_ip}},
            )

    def handle(self, peer: Peer, msg: Message) -> Awaitable[None] | None:
        """Dispatch ``msg``; what is left to await before the next one, if anything."""
        route = routing.route(peer.role, msg.type)
        if route is not None and route.background:
            task = asyncio.ensure_future(routing.dispatch(self.network, peer, msg, route))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return None
        return routing.dispatch_now(self.network, peer, msg, route)

    def rejected(self, link: PeerLink, error: ProtocolError) -> None:
        log.info(
            "frame rejected",
            extra={"fields": {"peer": link.peer_ip, "code": error.code, "error": str(error)}},
        )
        if link.conn.rejected_count in (1, MAX_BAD_FRAMES):
            self._audit_error(link, f"rejected frame: {error.code}")

    def flooded(self, link: PeerLink) -> None:
        self._audit_error(link, "too many bad frames; connection dropped")
        link.close("too many bad frames")

    def _audit_error(self, link: PeerLink, reason: str, **who: Any) -> None:
        self._writer.submit(
            partial(
                record,
                event=Event(
                    EventType.ERROR, "central", {"reason": reason}, source_ip=link.peer_ip, **who
                ),
            )
        )

    async def _authenticate(self, protocol: PeerProtocol) -> None:
        link = protocol.link
        assert link is not None
        try:
            async with asyncio.timeout(self._handshake_timeout):  # no task of its own
                who = await self._handshake(protocol)
        except TimeoutError:
            self._audit_error(link, "handshake timed out")
            link.close("handshake timed out")
            return
        except Exception:
            log.exception("handshake failed", extra={"fields": {"peer": link.peer_ip}})
            link.close("handshake failed")
            return
        if who is None:
            link.close("not authenticated")
            return
        role, principal_id, key = who
        link.conn.secure(key, Side.SERVER)
        peer = Peer(role, principal_id, link)
        try:
            self._connected(peer, key)
        except CentralError as exc:
            link.send(MessageType.ERROR, exc.body().to_body())
            link.close("refused")
            return
        protocol.secured(peer)

    def _connected(self, peer: Peer, key: bytes) -> None:
        net = self.network
        if peer.role is Role.MONITOR:
            net.chargepoints.monitor_up(peer.id, peer.link, key)
        elif peer.role is Role.ENGINE:
            net.chargepoints.engine_up(peer.id, peer.link)
        else:
            net.fleet.driver_up(peer.id, peer.link)

    def disconnected(self, peer: Peer, why: str) -> None:
        net, link = self.network, peer.link
        if peer.role is Role.MONITOR:
            net.chargepoints.monitor_lost(peer.id, link, why or "monitor disconnected")
            if self.cluster is not None:
                self.cluster.release(peer.id)  # its next login may go to any Central
        elif peer.role is Role.ENGINE:
            net.chargepoints.engine_lost(peer.id, link)
        else:
            net.fleet.driver_lost(peer.id, link)

    async def _handshake(self, protocol: PeerProtocol) -> tuple[Role, str, bytes] | None:
        link = protocol.link
        assert link is not None
        hello = await protocol.next_handshake_message()
        if hello is None:
            return None
        role, principal = str(hello.body.get("role", ""))[:16], str(hello.body.get("id", ""))[:32]
        keys = login_keys(role, principal, link.peer_ip)
        if self._throttled(link, keys, f"{role} {principal}"):
            return None
        if await self._moved(link, role, principal, take=False):
            return None
        verifier = await self._lookup(hello)
        handshake = ServerHandshake(
            lambda _role, _id: verifier, self.clock, decoy_params=self._params
        )
        try:
            reply = handshake.receive(hello)
            link.send(reply.type, reply.body)
            proof = await protocol.next_handshake_message()
            if proof is None or self._throttled(link, keys, f"{role} {principal}"):
                return None  # abandoned, or a proof that is not checked: no guess made
            reply = handshake.receive(proof)
        except ProtocolError as exc:
            self._auth_failed(link, handshake, f"{exc.code}: {exc}")
            link.send(MessageType.AUTH_FAILED, {"reason": "authentication failed"})
            return None
        done = handshake.state is HandshakeState.DONE
        if done and await self._moved(link, role, principal, take=True):
            return None  # another Central took the CP while this login was checked
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

    async def _moved(self, link: PeerLink, role: str, cp_id: str, *, take: bool) -> bool:
        """Send a CP's login to the Central serving it, if that is not this one; True if
        sent. ``take``: the monitor has proved its secret, so this process serves the CP
        from now on unless another live one does."""
        cluster = self.cluster
        if cluster is None or role not in (Role.MONITOR, Role.ENGINE):
            return False
        if take and role == Role.MONITOR:
            owner = await cluster.take(cp_id)
        else:
            owner = await cluster.owner_elsewhere(cp_id)
        if owner is None:
            return False
        link.send(MessageType.AUTH_FAILED, moved_body(owner))
        return True

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
        verifier = await self.verifiers.get(kind, principal_id)
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
        than the heart-beats. A row read again unchanged (the margin) is not applied
        again: a fleet registered within one margin would otherwise be re-applied on
        the loop every 2 s for as long as nothing newer is registered.
        """
        since = None if self._synced_up_to is None else self._synced_up_to - REFRESH_MARGIN

        def read() -> list[Any]:
            with self._db.query() as conn:
                return load_cps(conn, since)

        rows = await asyncio.get_running_loop().run_in_executor(None, read)
        if rows:
            latest = max(row.updated_at for row in rows)
            if self._synced_up_to is None or latest > self._synced_up_to:
                self._synced_up_to = latest
        applied = self._applied
        rows = [row for row in rows if applied.get(row.id) != row.updated_at]
        applied.update((row.id, row.updated_at) for row in rows)
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
