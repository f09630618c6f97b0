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
them. Every process reaps dead processes: the one whose DELETE returns a dead
process's CPs marks them DISCONNECTED, with their events, in the same transaction.

Messages to other processes (:class:`~central.model.Peers`) are ``pg_notify`` on one
channel, sent by the writer after what it wrote before (a durable row first: the hold,
the alert, the ticket); every process listens on a connection of its own and hands
them to :class:`central.remote.RemoteOps`. CPs served elsewhere are shown from the
database (state, holds, open session), read again every TICK s.
"""

from __future__ import annotations

import asyncio
import json
import logging
import select
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from central.errors import Conflict
from central.model import HOLD_OPERATOR, HOLD_WEATHER, ActiveSession
from central.network import Network
from central.reads import CPRow, OpenSession, load_alerts, load_open_sessions
from central.remote import RemoteOps
from central.states import CPState
from central.writer import DbWriter
from common.db import Database
from common.db.models import ChargePoint
from common.events import Event, EventType, record

__all__ = ["CHANNEL", "LEASE_TTL", "TICK", "Cluster"]

log = logging.getLogger(__name__)

CHANNEL = "ev_central"
TICK = 1.0  # seconds between lease renewals (and reads of the CPs served elsewhere)
LEASE_TTL = 3.0  # a process silent this long is dead: its CPs may be taken
ASK_TIMEOUT = 10.0  # an owner answers a charge request within the engine's 5 s

_ALIVE = "heartbeat_at >= now() - make_interval(secs => :ttl)"
_OWNER = text(
    f"SELECT o.node_id FROM cp_owners o JOIN central_nodes n ON n.id = o.node_id "
    f"WHERE o.cp_id = :cp AND n.{_ALIVE}"
)
_TAKE = text(
    "INSERT INTO cp_owners (cp_id, node_id, since, engine_up) VALUES (:cp, :me, now(), false) "
    "ON CONFLICT (cp_id) DO UPDATE SET node_id = :me, since = now(), engine_up = false "
    "WHERE cp_owners.node_id = :me OR NOT EXISTS (SELECT 1 FROM central_nodes n "
    f"WHERE n.id = cp_owners.node_id AND n.{_ALIVE}) RETURNING since"
)
_VIEW = text(
    "SELECT c.id, c.last_state, c.operator_stopped, o.node_id, o.engine_up "
    "FROM charge_points c LEFT JOIN cp_owners o ON o.cp_id = c.id"
)


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
        with self._db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO central_nodes (id, started_at, heartbeat_at) "
                    "VALUES (:me, now(), now()) "
                    "ON CONFLICT (id) DO UPDATE SET started_at = now(), heartbeat_at = now()"
                ),
                {"me": self.node_id},
            )
            conn.execute(text("DELETE FROM cp_owners WHERE node_id = :me"), {"me": self.node_id})

    async def close(self) -> None:
        """Leave: the CPs served here are free at once (their monitors are closed next)."""
        self._stop.set()

        def leave() -> None:
            with self._db.engine.begin() as conn:
                conn.execute(
                    text("DELETE FROM cp_owners WHERE node_id = :me"), {"me": self.node_id}
                )
                conn.execute(text("DELETE FROM central_nodes WHERE id = :me"), {"me": self.node_id})

        try:
            await self._in_thread(leave)
        except Exception:
            log.exception("leaving the cluster failed; the lease expires by itself")
        if self._listener is not None:
            await self._in_thread(self._listener.join, 2.0)

    async def _in_thread(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # ------------------------------------------------------------ ownership
    def owns(self, cp_id: str) -> bool:
        return cp_id in self._owned

    async def owner_elsewhere(self, cp_id: str) -> str | None:
        """The live process serving ``cp_id`` if it is not this one (a login goes there)."""

        def read() -> str | None:
            with self._db.engine.connect() as conn:
                owner = conn.execute(_OWNER, {"cp": cp_id, "ttl": self._ttl}).scalar()
            return None if owner in (None, self.node_id) else str(owner)

        return await self._in_thread(read)

    async def take(self, cp_id: str) -> str | None:
        """Serve ``cp_id`` (its monitor proved its secret here); None if taken, else the
        live process that serves it."""

        def write() -> tuple[Any, CPRow | None, list[str], list[OpenSession]]:
            with self._db.transaction() as session:
                params = {"cp": cp_id, "me": self.node_id, "ttl": self._ttl}
                since = session.execute(_TAKE, params).scalar()
                if since is None:
                    owner = session.execute(_OWNER, {"cp": cp_id, "ttl": self._ttl}).scalar()
                    return None, None, [str(owner or "")], []
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
        cp.holds = set()
        if row is not None and row.operator_stopped:
            cp.holds.add(HOLD_OPERATOR)
        if cp.location in alerts:
            cp.holds.add(HOLD_WEATHER)
        self._net.sessions.adopt(cp_id, open_sessions)
        log.info("serving charge point", extra={"fields": {"cp_id": cp_id}})

    def release(self, cp_id: str) -> None:
        """The CP's monitor went: give the CP up, so its next login may go anywhere."""
        taken = self._owned.get(cp_id)
        if taken is None:
            return
        self._drop(cp_id, "its monitor disconnected")
        self._writer.submit(
            partial(
                _run,
                sql="DELETE FROM cp_owners WHERE cp_id = :cp AND node_id = :me AND since = :since",
                params={"cp": cp_id, "me": self.node_id, "since": taken[1]},
            )
        )

    def engine_seen(self, cp_id: str, up: bool) -> None:
        """Say whether the CP's engine is connected (other processes show it)."""
        if cp_id in self._owned:
            self._writer.submit(
                partial(
                    _run,
                    sql="UPDATE cp_owners SET engine_up = :up WHERE cp_id = :cp AND node_id = :me",
                    params={"cp": cp_id, "me": self.node_id, "up": up},
                )
            )

    def _drop(self, cp_id: str, why: str) -> None:
        """Stop acting for the CP here: no state change, no settlement (not ours now)."""
        self._owned.pop(cp_id, None)
        cp = self._net.fleet.cps.get(cp_id)
        if cp is None:
            return
        links = [link for link in (cp.monitor, cp.engine) if link is not None]
        cp.monitor = cp.engine = None
        cp.remote, cp.key, cp.session = True, None, None
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
            result = await self._in_thread(self._tick)
        except Exception:
            log.exception("cluster lease renewal failed")
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
        me = {"me": self.node_id}
        with self._db.engine.begin() as conn:
            renewed = conn.execute(
                text("UPDATE central_nodes SET heartbeat_at = now() WHERE id = :me"), me
            ).rowcount
            if not renewed:  # declared dead by the others: whatever it served is gone
                conn.execute(
                    text(
                        "INSERT INTO central_nodes (id, started_at, heartbeat_at) "
                        "VALUES (:me, now(), now()) ON CONFLICT (id) DO NOTHING"
                    ),
                    me,
                )
            mine = set(
                conn.execute(text("SELECT cp_id FROM cp_owners WHERE node_id = :me"), me).scalars()
            )
        self._reap()
        with self._db.read() as session:
            view = list(session.execute(_VIEW))
            open_sessions = load_open_sessions(session)
        return _Tick(bool(renewed), mine, view, open_sessions)

    def _reap(self) -> None:
        with self._db.transaction() as session:
            dead = (
                session.execute(
                    text(f"DELETE FROM central_nodes WHERE NOT ({_ALIVE}) RETURNING id"),
                    {"ttl": self._ttl},
                )
                .scalars()
                .all()
            )
            freed = (
                session.execute(
                    text(
                        "DELETE FROM cp_owners o WHERE NOT EXISTS "
                        "(SELECT 1 FROM central_nodes n WHERE n.id = o.node_id) RETURNING cp_id"
                    )
                )
                .scalars()
                .all()
            )
            if not freed:
                return
            rows = session.execute(
                text(
                    "SELECT id, last_state FROM charge_points WHERE id = ANY(:ids) "
                    "AND last_state <> 'DISCONNECTED' FOR UPDATE"
                ),
                {"ids": list(freed)},
            ).all()
            session.execute(
                text("UPDATE charge_points SET last_state = 'DISCONNECTED' WHERE id = ANY(:ids)"),
                {"ids": [cp_id for cp_id, _ in rows]},
            )
            for cp_id, old in rows:
                record(
                    session,
                    Event(
                        EventType.CP_STATE_CHANGED,
                        "central",
                        {"from": old, "to": "DISCONNECTED", "reason": "its Central stopped"},
                        cp_id=cp_id,
                    ),
                )
        log.warning(
            "Central processes stopped; their charge points are free",
            extra={"fields": {"nodes": list(dead), "cps": len(freed)}},
        )

    def _show(self, result: _Tick) -> None:
        """CPs served elsewhere (or by none), as the database has them."""
        fleet = self._net.fleet
        sessions = {s.cp_id: s for s in result.open_sessions}
        for cp_id, state, stopped, owner, engine_up in result.view:
            cp = fleet.cps.get(cp_id)
            if cp is None or not cp.remote:
                continue
            cp.state = CPState(state)
            cp.owner = owner
            cp.remote_engine = bool(owner and engine_up)
            cp.holds = {HOLD_OPERATOR} if stopped else set()
            if cp.location in fleet.alerts:
                cp.holds.add(HOLD_WEATHER)
            cp.session = _live(sessions.get(cp_id))

    # ------------------------------------------------------------- messages
    def tell(self, op: str, body: Mapping[str, Any]) -> None:
        payload = json.dumps({**body, "op": op, "from": self.node_id}, default=str)
        self._writer.submit(partial(_notify, payload=payload))

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
                    cursor.execute(f"LISTEN {CHANNEL}")
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


def _notify(session: Session, payload: str) -> None:
    session.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": CHANNEL, "payload": payload}
    )


def _run(session: Session, sql: str, params: dict[str, Any]) -> None:
    session.execute(text(sql), params)


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
