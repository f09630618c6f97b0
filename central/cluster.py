"""Several Central processes over one PostgreSQL: who serves each CP, and messages between them.

    central_nodes  one row per running process (id = the HOST:PORT CPs reach it at),
                   its lease renewed every TICK s; older than LEASE_TTL s: dead
    cp_owners      one row per CP served: the process its monitor and engine are on

A CP's monitor logs in anywhere; a process that does not serve the CP while its owner
lives answers ``moved`` with the owner's address (:func:`common.protocol.handshake.
moved_body`). A process takes a CP (an ``INSERT .. ON CONFLICT DO UPDATE .. WHERE`` the
owner is this process or dead) only after the monitor proved its secret. A process
gives a CP up when its monitor goes; it stops acting for CPs whose row names another
process (a stale owner, say one paused for longer than the lease), and for all of them
when it could not renew its own lease for LEASE_TTL - TICK s, before anyone may take
them. Every process reaps dead processes each second and marks DISCONNECTED, with their
events, the CPs no live process serves (rows locked in id order, so a process taking
one writes its state after the mark, and two reapers mark a CP once).

Messages to other processes (:class:`~central.model.Peers`) are ``pg_notify`` on one
channel, sent by the writer after what it wrote before (a durable row first: the hold,
the alert, the ticket); every process listens on a connection of its own and hands
them to :class:`central.remote.RemoteOps`. CPs served elsewhere are shown from the
database (state, holds, open session), read again every TICK s. The SQL is
:mod:`central.leases`'s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import threading
import time
import uuid
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from central import leases
from central.errors import Conflict
from central.model import HOLD_OPERATOR, HOLD_WEATHER, ActiveSession
from central.network import Network
from central.reads import CPRow, OpenSession, load_alerts, load_open_sessions
from central.remote import RemoteOps
from central.states import CPState
from central.writer import DbWriter
from common.db import Database
from common.db.models import ChargePoint

__all__ = ["LEASE_TTL", "TICK", "Cluster"]

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between lease renewals (and reads of the CPs served elsewhere)
LEASE_TTL = 3.0  # a process silent this long is dead: its CPs may be taken
ASK_TIMEOUT = 10.0  # an owner answers a charge request within the engine's 5 s


@dataclass(frozen=True)
class _Tick:
    renewed: bool
    mine: set[str]
    view: list[Any]
    open_sessions: list[OpenSession]


class Cluster:
    """This process's part in a cluster of Centrals sharing one PostgreSQL database.

    Args:
        db: the shared database (PostgreSQL).
        writer: this process's writer (messages leave after what it wrote before).
        network: this process's domain.
        node_id: the HOST:PORT CPs reach this process at.
    """

    def __init__(
        self,
        db: Database,
        writer: DbWriter,
        network: Network,
        node_id: str,
        *,
        ttl: float = LEASE_TTL,
    ) -> None:
        self.node_id = node_id
        self._db = db
        self._writer = writer
        self._net = network
        self._ttl = ttl
        self._ops = RemoteOps(network, self._reply)
        self._owned: dict[str, tuple[float, Any]] = {}  # cp_id -> (taken at, lease since)
        self._asked: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._renewed_at = time.monotonic()
        self._stop = threading.Event()
        self._listener: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # A thread of its own: renewals must not queue behind a login storm's look-ups.
        self._ticker = ThreadPoolExecutor(1, thread_name_prefix="cluster-tick")

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Join: a fresh lease (a restart at the same address holds no CP), listen, look."""
        self._loop = asyncio.get_running_loop()
        for cp in self._net.fleet.cps.values():
            cp.remote = True
        self._net.fleet.peers = self
        await self._in_thread(self._join)
        self._listener = threading.Thread(target=self._listen, name="cluster-listen", daemon=True)
        self._listener.start()
        await self.tick()

    def _join(self) -> None:
        with self._db.transaction() as session:
            leases.join(session, self.node_id)

    async def close(self) -> None:
        """Leave: the CPs served here are free at once (their monitors are closed next)."""
        self._stop.set()

        def leave() -> None:
            with self._db.transaction() as session:
                leases.leave(session, self.node_id)

        try:
            await self._in_thread(leave)
        except Exception:
            log.exception("leaving the cluster failed; the lease expires by itself")
        if self._listener is not None:
            await self._in_thread(self._listener.join, 2.0)
        self._ticker.shutdown(wait=False)

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # ------------------------------------------------------------ ownership
    async def owner_elsewhere(self, cp_id: str) -> str | None:
        """The live process serving ``cp_id`` if it is not this one (a login goes there).

        A CP served here needs no query. Otherwise the database says, by the owner's
        lease as it stands now: an owner remembered from the last view may have died or
        let the CP go since (measured: answering from it made fail-overs slower).
        """
        cp = self._net.fleet.cps.get(cp_id)
        if cp is not None and not cp.remote:
            return None

        def read() -> str | None:
            with self._db.query() as conn:
                found = leases.owner(conn, cp_id, self._ttl)
            return None if found == self.node_id else found

        return await self._in_thread(read)

    async def take(self, cp_id: str) -> str | None:
        """Serve ``cp_id`` (its monitor proved its secret here); None if taken, else the
        live process that serves it."""

        def write() -> tuple[Any, CPRow | None, list[str], list[OpenSession]]:
            with self._db.transaction() as session:
                since = leases.take(session, cp_id, self.node_id, self._ttl)
                if since is None:
                    return None, None, [leases.owner(session, cp_id, self._ttl) or ""], []
                row = session.get(ChargePoint, cp_id)
                return (
                    since,
                    None if row is None else CPRow.of(row),
                    load_alerts(session),
                    load_open_sessions(session, cp_id),
                )

        since, row, alerts, open_sessions = await self._in_thread(write)
        if since is None:
            return alerts[0] or None
        self._adopt(cp_id, since, row, alerts, open_sessions)
        return None

    def _adopt(
        self,
        cp_id: str,
        since: Any,
        row: CPRow | None,
        alerts: list[str],
        open_sessions: list[OpenSession],
    ) -> None:
        fleet = self._net.fleet
        if row is not None:
            self._net.chargepoints.sync_registrations([row])
        cp = fleet.cps.get(cp_id)
        self._owned[cp_id] = (time.monotonic(), since)
        if cp is None or not cp.remote:
            return  # served here already: its live state stands
        cp.remote, cp.owner, cp.remote_engine = False, self.node_id, False
        cp.state, cp.session, cp.key, cp.fault = CPState.DISCONNECTED, None, None, None
        cp.engine_ok = True
        cp.holds = _holds(cp.location, row is not None and row.operator_stopped, alerts)
        self._net.sessions.adopt(cp_id, open_sessions)
        log.info("serving charge point", extra={"fields": {"cp_id": cp_id}})

    def release(self, cp_id: str) -> None:
        """The CP's monitor went: give the CP up, so its next login may go anywhere.

        Nothing happens while a monitor is still connected (a newer one replaced the
        connection that closed).
        """
        taken = self._owned.get(cp_id)
        cp = self._net.fleet.cps.get(cp_id)
        if taken is None or cp is None or cp.monitor is not None:
            return
        self._drop(cp_id, "its monitor disconnected")
        self._writer.submit(partial(leases.give_up, cp_id=cp_id, me=self.node_id, since=taken[1]))

    def engine_seen(self, cp_id: str, up: bool) -> None:
        """Say whether the CP's engine is connected (other processes show it)."""
        if cp_id in self._owned:
            self._writer.submit(partial(leases.engine_seen, cp_id=cp_id, me=self.node_id, up=up))

    def _drop(self, cp_id: str, why: str) -> None:
        """Stop acting for the CP here: no state change, no settlement (not ours now)."""
        self._owned.pop(cp_id, None)
        cp = self._net.fleet.cps.get(cp_id)
        if cp is None:
            return
        links = [link for link in (cp.monitor, cp.engine) if link is not None]
        cp.monitor = cp.engine = None
        cp.remote, cp.owner, cp.key, cp.session = True, None, None, None
        self._net.sessions.adopt(cp_id, [])
        for link in links:
            link.close(f"charge point no longer served here: {why}")
        log.info("charge point given up", extra={"fields": {"cp_id": cp_id, "why": why}})

    # ----------------------------------------------------------------- tick
    async def tick(self) -> None:
        """Renew the lease, reap dead processes, let go of CPs taken by others, and read
        the CPs served elsewhere."""
        started = time.monotonic()
        try:
            # A database that does not answer (a cut network) must not hold the fence back.
            work = asyncio.get_running_loop().run_in_executor(self._ticker, self._tick)
            result = await asyncio.wait_for(work, self._ttl - TICK)
        except Exception:
            log.exception("cluster lease renewal failed or timed out")
            if time.monotonic() - self._renewed_at > self._ttl - TICK:
                for cp_id in list(self._owned):
                    self._drop(cp_id, "lease not renewed")
            return
        if result.renewed:
            self._renewed_at = started
        for cp_id, (taken_at, _since) in list(self._owned.items()):
            if cp_id not in result.mine and taken_at < started:
                self._drop(cp_id, "served by another Central now")
        self._show(result)

    def _tick(self) -> _Tick:
        with self._db.transaction() as session:
            renewed = leases.renew(session, self.node_id)
            mine = leases.served(session, self.node_id)
        with self._db.transaction() as session:
            dead, freed = leases.reap(session, self._ttl)
        if dead or freed:
            log.warning(
                "Central processes stopped; their charge points are free",
                extra={"fields": {"nodes": dead, "cps": freed}},
            )
        with self._db.query() as conn:  # every second: plain rows, no ORM objects
            view = leases.view(conn, self.node_id)
            return _Tick(renewed, mine, view, load_open_sessions(conn))

    def _show(self, result: _Tick) -> None:
        """CPs served elsewhere (or by none), as the database has them."""
        fleet = self._net.fleet
        sessions = {s.cp_id: s for s in result.open_sessions}
        for cp_id, state, stopped, owner, engine_up in result.view:
            cp = fleet.cps.get(cp_id)
            if cp is None or not cp.remote:
                continue
            cp.state = CPState(state) if owner else CPState.DISCONNECTED
            cp.owner = owner
            cp.remote_engine = bool(owner and engine_up)
            cp.holds = _holds(cp.location, stopped, fleet.alerts)
            cp.session = _live(sessions.get(cp_id))

    # ------------------------------------------------------------- messages
    def tell(self, op: str, body: Mapping[str, Any]) -> None:
        payload = json.dumps({**body, "op": op, "from": self.node_id}, default=str)
        self._writer.submit(partial(leases.notify, payload=payload))

    async def ask(self, op: str, body: Mapping[str, Any]) -> dict[str, Any]:
        request_id = uuid.uuid4().hex
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._asked[request_id] = answer
        try:
            self.tell(op, {**body, "request_id": request_id})
            return await asyncio.wait_for(answer, ASK_TIMEOUT)
        except TimeoutError:
            raise Conflict("the Central serving this charge point did not answer") from None
        finally:
            self._asked.pop(request_id, None)

    def _reply(self, asked: Mapping[str, Any], reply: dict[str, Any]) -> None:
        self.tell("answer", {"to": asked["from"], "request_id": asked["request_id"], **reply})

    def _received(self, msg: dict[str, Any]) -> None:
        if msg.get("from") == self.node_id:
            return
        if msg.get("op") == "answer":
            if msg.get("to") == self.node_id:
                answer = self._asked.get(str(msg.get("request_id")))
                if answer is not None and not answer.done():
                    answer.set_result(msg)
            return
        self._ops.handle(msg)

    def _listen(self) -> None:
        """A thread: LISTEN on a connection of its own, hand each message to the loop."""
        assert self._loop is not None
        while not self._stop.is_set():
            try:
                raw = self._db.engine.raw_connection()
                conn: Any = raw.driver_connection
                raw.detach()  # ours alone: it must not go back to the pool mid-LISTEN
                conn.autocommit = True
                with conn.cursor() as cursor:
                    cursor.execute(f"LISTEN {leases.CHANNEL}")
                while not self._stop.is_set():
                    if select.select([conn], [], [], 0.5)[0]:
                        conn.poll()
                        for note in conn.notifies:
                            msg = json.loads(note.payload)
                            self._loop.call_soon_threadsafe(self._received, msg)
                        conn.notifies.clear()
                conn.close()
            except Exception:
                log.exception("listening to the other Centrals failed; again in 1 s")
                self._stop.wait(1.0)


def _live(row: OpenSession | None) -> ActiveSession | None:
    if row is None:
        return None
    return ActiveSession(
        row.id,
        row.cp_id,
        row.driver_id,
        row.price,
        row.target_kwh,
        row.status,
        Decimal(row.energy_kwh),
        started_at=row.started_at,
    )


def _holds(location: str, operator_stopped: bool, alerts: Collection[str]) -> set[str]:
    """What holds a CP served elsewhere, as the database and the alerts have it."""
    holds = {HOLD_OPERATOR} if operator_stopped else set()
    if location in alerts:
        holds.add(HOLD_WEATHER)
    return holds
