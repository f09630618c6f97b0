"""Central's domain core: every charge point's state, the charging sessions, the rules.

The :class:`Network` runs on the event loop and is the one copy of live state: the
TCP server feeds it what peers say, the operator console and API_Central call its
operator methods, and it answers through :class:`Link` objects and the database
writer. It never touches a socket, so it is unit-tested with fakes.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from central import store
from central.states import CPState, Trigger, next_state
from central.store import CPRow, DbWriter, OpenSession, Ticket, compute_total
from common.db.models import ChargePoint, ChargingSession, SessionStatus, WeatherAlert, utcnow
from common.events import Event, EventType, record
from common.protocol.messages import Message, MessageType

__all__ = ["ChargeDecision", "ChargePointView", "Link", "Network", "NetworkError"]

log = logging.getLogger(__name__)
SOURCE = "central"

HOLD_OPERATOR = "operator"
HOLD_WEATHER = "weather"
HOLD_REVOKED = "revoked"


class Link(Protocol):
    """What the network needs of a connected peer: send without blocking, close."""

    peer_ip: str

    def send(self, msg_type: MessageType, body: Mapping[str, Any]) -> None: ...

    def close(self, reason: str) -> None: ...


class NetworkError(Exception):
    """An operator or API request that cannot be done; ``code`` maps to an HTTP status."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # "not_found" | "conflict" | "bad_request"
        self.message = message


@dataclass
class ActiveSession:
    id: str
    cp_id: str
    driver_id: str | None
    price: Decimal
    target_kwh: Decimal | None
    status: str = SessionStatus.AUTHORIZED
    kwh: Decimal = Decimal(0)
    kw: float = 0.0
    authorized_at: float = 0.0
    started_at: str | None = None  # ISO time the vehicle was plugged in

    @property
    def eur(self) -> Decimal:
        return compute_total(self.kwh, self.price)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.id,
            "cp_id": self.cp_id,
            "driver_id": self.driver_id,
            "status": self.status,
            "kw": round(self.kw, 2),
            "kwh": float(round(self.kwh, 3)),
            "eur": float(self.eur),
            "price_eur_kwh": float(self.price),
            "started_at": self.started_at,
        }


@dataclass
class ChargePointView:
    """Everything Central knows about one charge point right now."""

    id: str
    location: str
    price: Decimal
    registered: bool = True
    state: CPState = CPState.DISCONNECTED
    monitor: Link | None = None
    engine: Link | None = None
    engine_ok: bool = True
    holds: set[str] = field(default_factory=set)
    session: ActiveSession | None = None
    last_heartbeat: float = 0.0
    key: bytes | None = None
    fault: str | None = None

    @property
    def key_status(self) -> str:
        if HOLD_REVOKED in self.holds:
            return "revoked"
        return "active" if self.key else "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "location": self.location,
            "price_eur_kwh": float(self.price),
            "state": str(self.state),
            "registered": self.registered,
            "monitor_connected": self.monitor is not None,
            "engine_connected": self.engine is not None,
            "engine_ok": self.engine_ok,
            "stopped_by": sorted(self.holds),
            "key_status": self.key_status,
            "fault": self.fault,
            "session": self.session.to_dict() if self.session else None,
        }


@dataclass(frozen=True)
class ChargeDecision:
    authorized: bool
    cp_id: str
    reason: str = ""
    code: str = ""  # "not_found" | "conflict" | "bad_request" when denied
    session: dict[str, Any] | None = None


class Network:
    """Live state of every CP, driver link and session.

    Args:
        writer: database writer (events, sessions, state).
        clock: monotonic seconds, for heartbeats and timeouts.
        heartbeat_timeout: monitor silence that makes a CP DISCONNECTED.
        authorize_timeout: how long the engine has to accept an authorisation.
        plug_timeout: how long an authorised session waits for the vehicle.
    """

    def __init__(
        self,
        writer: DbWriter,
        clock: Callable[[], float],
        *,
        heartbeat_timeout: float = 5.0,
        authorize_timeout: float = 5.0,
        plug_timeout: float = 120.0,
    ) -> None:
        self._writer = writer
        self._clock = clock
        self.heartbeat_timeout = heartbeat_timeout
        self.authorize_timeout = authorize_timeout
        self.plug_timeout = plug_timeout
        self.cps: dict[str, ChargePointView] = {}
        self.drivers: dict[str, Link] = {}
        self.alerts: set[str] = set()
        self.readings: dict[str, dict[str, Any]] = {}  # location -> latest weather reading
        self.recent: deque[str] = deque(maxlen=8)  # last notable events, for the console
        self._orphans: dict[str, OpenSession] = {}  # cp_id -> session open at last stop
        self._engine_answers: dict[str, asyncio.Future[tuple[bool, str]]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.on_change: Callable[[ChargePointView], None] = lambda cp: None

    # ----------------------------------------------------------------- loading
    def load(
        self, cps: Iterable[CPRow], alerts: Iterable[str], open_sessions: Iterable[OpenSession]
    ) -> None:
        """Start from the database: every CP DISCONNECTED, holds and open sessions restored."""
        self.alerts = set(alerts)
        for row in cps:
            self._apply_row(row)
        for orphan in open_sessions:
            self._orphans[orphan.cp_id] = orphan

    def sync_registrations(self, rows: Iterable[CPRow]) -> None:
        """Apply registrations, deregistrations and price changes made by others."""
        for row in rows:
            cp = self.cps.get(row.id)
            was_registered = cp.registered if cp else None
            cp = self._apply_row(row)
            if was_registered and not row.registered:
                log.info("charge point deregistered", extra={"fields": {"cp_id": cp.id}})
                self._end_supply(cp, "deregistered")
                for link in (cp.monitor, cp.engine):
                    if link is not None:
                        link.send(MessageType.KEY_REVOKED, {"reason": "deregistered"})
                        link.close("deregistered")
                cp.key = None
                self.on_change(cp)

    def _apply_row(self, row: CPRow) -> ChargePointView:
        cp = self.cps.get(row.id)
        if cp is None:
            cp = self.cps[row.id] = ChargePointView(row.id, row.location, row.price)
        cp.location, cp.price, cp.registered = row.location, row.price, row.registered
        if row.operator_stopped:
            cp.holds.add(HOLD_OPERATOR)
        if cp.location in self.alerts:
            cp.holds.add(HOLD_WEATHER)
        return cp

    # --------------------------------------------------------------- helpers
    def get(self, cp_id: str) -> ChargePointView:
        cp = self.cps.get(cp_id)
        if cp is None:
            raise NetworkError("not_found", f"unknown charge point {cp_id!r}")
        return cp

    def _emit(self, event: Event) -> None:
        """Record an event soon (ordered after everything submitted before it)."""
        self._writer.submit(partial(record, event=event))

    async def _record(self, event: Event) -> None:
        """Record an event and wait until it is committed (operator actions answer after)."""
        await self._writer.call(partial(record, event=event))

    def _fire(self, cp: ChargePointView, trigger: Trigger, reason: str) -> None:
        old = cp.state
        new = next_state(old, trigger)
        if new is old:
            self.on_change(cp)
            return
        cp.state = new
        self.recent.append(f"{time.strftime('%H:%M:%S')} {cp.id}: {old} -> {new} ({reason})")
        log.info(
            "state changed",
            extra={"fields": {"cp_id": cp.id, "from": old, "to": new, "reason": reason}},
        )
        self._writer.submit(partial(_persist_state, cp_id=cp.id, old=old, new=new, reason=reason))
        if cp.monitor is not None:
            cp.monitor.send(MessageType.STATUS, {"state": str(new), "reason": reason})
        self.on_change(cp)

    # ----------------------------------------------------------------- monitor
    def monitor_up(self, cp_id: str, link: Link, key: bytes, engine_ok: bool = True) -> None:
        """A monitor authenticated: the CP leaves DISCONNECTED (or a revocation ends)."""
        cp = self.get(cp_id)
        old = cp.monitor
        cp.monitor, cp.key, cp.engine_ok = link, key, engine_ok
        cp.last_heartbeat = self._clock()
        if old is not None and old is not link:
            old.close("replaced by a new monitor connection")
        revoked = HOLD_REVOKED in cp.holds
        cp.holds.discard(HOLD_REVOKED)
        if cp.state is CPState.DISCONNECTED or (revoked and cp.state is CPState.STOPPED):
            trigger = Trigger.MONITOR_UP
            if not engine_ok:
                trigger = Trigger.MONITOR_UP_FAULTY
            elif cp.holds:
                trigger = Trigger.MONITOR_UP_STOPPED
            self._fire(cp, trigger, "monitor authenticated")
        else:
            self.on_change(cp)
        link.send(MessageType.STATUS, {"state": str(cp.state), "reason": "authenticated"})

    def heartbeat(self, cp_id: str, link: Link, engine_ok: bool, reason: str = "") -> None:
        """A monitor's heartbeat, with its engine's health."""
        cp = self.get(cp_id)
        if cp.monitor is not link:
            return
        cp.last_heartbeat = self._clock()
        self.engine_health(cp_id, link, engine_ok, reason)

    def engine_health(self, cp_id: str, link: Link, ok: bool, reason: str = "") -> None:
        """Monitor says the engine is OK or KO; a KO during a supply ends it at once."""
        cp = self.get(cp_id)
        if cp.monitor is not link or ok == cp.engine_ok:
            return
        cp.engine_ok = ok
        if not ok:
            cp.fault = reason or "engine KO"
            self._end_supply(cp, "fault")
            self._fire(cp, Trigger.ENGINE_FAULT, cp.fault)
        else:
            cp.fault = None
            if cp.state is CPState.BROKEN:
                trigger = Trigger.ENGINE_RECOVERED_STOPPED if cp.holds else Trigger.ENGINE_RECOVERED
                self._fire(cp, trigger, "engine recovered")

    def monitor_lost(self, cp_id: str, link: Link, reason: str) -> None:
        cp = self.cps.get(cp_id)
        if cp is None or cp.monitor is not link:
            return
        cp.monitor = None
        if HOLD_REVOKED in cp.holds:
            self.on_change(cp)  # Central cut it; the CP stays STOPPED until re-authentication
            return
        self._end_supply(cp, "monitor_lost")
        if cp.state is not CPState.DISCONNECTED:
            self._fire(cp, Trigger.MONITOR_LOST, reason)

    def check_heartbeats(self) -> list[str]:
        """Disconnect monitors silent for longer than the timeout; returns their CP ids."""
        now = self._clock()
        silent = [
            cp
            for cp in self.cps.values()
            if cp.monitor is not None and now - cp.last_heartbeat > self.heartbeat_timeout
        ]
        for cp in silent:
            link = cp.monitor
            assert link is not None
            self.monitor_lost(cp.id, link, "heartbeat timeout")
            link.close("heartbeat timeout")
        self._expire_authorizations(now)
        return [cp.id for cp in silent]

    # ------------------------------------------------------------------ engine
    def engine_key(self, cp_id: str) -> bytes | None:
        """The key an engine must prove to connect (handed over by its monitor)."""
        cp = self.cps.get(cp_id)
        if cp is None or not cp.registered or HOLD_REVOKED in cp.holds:
            return None
        return cp.key

    def engine_up(self, cp_id: str, link: Link) -> None:
        cp = self.get(cp_id)
        old = cp.engine
        cp.engine = link
        if old is not None and old is not link:
            old.close("replaced by a new engine connection")
        self.on_change(cp)

    def engine_lost(self, cp_id: str, link: Link) -> None:
        cp = self.cps.get(cp_id)
        if cp is not None and cp.engine is link:
            cp.engine = None
            self.on_change(cp)

    async def engine_message(self, cp_id: str, link: Link, msg: Message) -> None:
        cp = self.get(cp_id)
        body = msg.body
        kind = msg.type
        if kind in (MessageType.CHARGE_AUTHORIZED, MessageType.CHARGE_DENIED):
            answer = self._engine_answers.pop(str(body.get("session_id")), None)
            if answer is not None and not answer.done():
                accepted = kind is MessageType.CHARGE_AUTHORIZED
                answer.set_result((accepted, str(body.get("reason", ""))))
                s = cp.session
                if accepted and s is not None and s.id == body.get("session_id"):
                    # Told here, before any later message of this engine is handled, so
                    # the driver always hears "authorised" before "supply started".
                    self._tell_driver(s, MessageType.CHARGE_AUTHORIZED, s.to_dict())
        elif kind is MessageType.SUPPLY_STARTED:
            self._supply_started(cp, link, str(body.get("session_id")))
        elif kind is MessageType.TELEMETRY:
            self._telemetry(cp, link, body)
        elif kind is MessageType.SUPPLY_ENDED:
            await self._supply_ended(cp, link, body)
        elif kind is MessageType.STATUS:
            await self._engine_status(cp, link, body)
        elif kind is MessageType.CHARGE_REQUEST:
            # Its own task: the authorisation waits for this same engine's answer, which
            # the engine's read loop must stay free to receive.
            task = asyncio.create_task(self._local_request(cp, link, body))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        else:
            self.refuse(link, f"{kind} is not a message an engine sends", cp_id=cp.id)

    async def _local_request(
        self, cp: ChargePointView, link: Link, body: Mapping[str, Any]
    ) -> None:
        """A charge asked for at the CP's own menu."""
        driver = body.get("driver_id")
        decision = await self.request_charge(
            cp.id, str(driver) if driver else None, body.get("target_kwh"), link.peer_ip
        )
        if not decision.authorized:
            link.send(MessageType.CHARGE_DENIED, {"cp_id": cp.id, "reason": decision.reason})

    def refuse(self, link: Link, reason: str, *, cp_id: str | None = None, **who: Any) -> None:
        """Answer a message that is out of state, and put it in the audit log."""
        link.send(MessageType.ERROR, {"reason": reason})
        self.recent.append(f"{time.strftime('%H:%M:%S')} refused {cp_id or who}: {reason}")
        self._emit(
            Event(
                EventType.ERROR,
                SOURCE,
                {"reason": reason},
                cp_id=cp_id,
                source_ip=link.peer_ip,
                **who,
            )
        )

    def _supply_started(self, cp: ChargePointView, link: Link, session_id: str) -> None:
        s = cp.session
        if s is None or s.id != session_id or s.status != SessionStatus.AUTHORIZED:
            self.refuse(link, "no authorised session to start", cp_id=cp.id)
            return
        if cp.state is not CPState.ACTIVATED:
            self.refuse(link, f"cannot supply while {cp.state}", cp_id=cp.id)
            return
        s.status = SessionStatus.SUPPLYING
        s.started_at = utcnow().isoformat()
        self._writer.submit(partial(_persist_started, session_id=s.id, cp_id=cp.id))
        self._fire(cp, Trigger.SUPPLY_STARTED, f"supplying {s.driver_id or 'local user'}")
        self._tell_driver(s, MessageType.SUPPLY_STARTED, {"session_id": s.id, "cp_id": cp.id})

    def _telemetry(self, cp: ChargePointView, link: Link, body: Mapping[str, Any]) -> None:
        s = cp.session
        if s is None or s.status != SessionStatus.SUPPLYING or body.get("session_id") != s.id:
            self.refuse(link, "telemetry for a charge point that is not supplying", cp_id=cp.id)
            return
        try:
            kwh = Decimal(str(body.get("kwh")))
            kw = float(body.get("kw", 0.0))
        except (InvalidOperation, TypeError, ValueError):
            self.refuse(link, "malformed telemetry", cp_id=cp.id)
            return
        if not kwh.is_finite() or kwh < s.kwh:
            self.refuse(link, "energy may only grow", cp_id=cp.id)
            return
        s.kwh, s.kw = kwh, kw
        progress = s.to_dict()
        self._writer.submit(partial(_persist_progress, progress=progress))
        self._tell_driver(s, MessageType.TELEMETRY, progress)
        self.on_change(cp)

    async def _supply_ended(self, cp: ChargePointView, link: Link, body: Mapping[str, Any]) -> None:
        session_id = str(body.get("session_id"))
        reason = str(body.get("reason") or "unplugged")
        try:
            kwh = Decimal(str(body.get("kwh")))
        except InvalidOperation:
            self.refuse(link, "malformed supply report", cp_id=cp.id)
            return
        s = cp.session
        if s is not None and s.id == session_id:
            s.kwh = max(s.kwh, kwh)
            ticket = await self._settle(cp, s, reason)
        else:
            self._orphans.pop(cp.id, None)
            try:
                ticket, _ = await self._writer.call(
                    partial(
                        store.settle, session_id=session_id, kwh=kwh, reason=reason, source=SOURCE
                    )
                )
            except LookupError:
                self.refuse(link, f"unknown session {session_id}", cp_id=cp.id)
                return
            self._deliver_ticket(ticket)
        link.send(MessageType.TICKET, ticket.to_body())

    async def _engine_status(
        self, cp: ChargePointView, link: Link, body: Mapping[str, Any]
    ) -> None:
        """After (re)connecting, an engine says whether it is supplying; reconcile."""
        orphan = self._orphans.get(cp.id)
        if orphan is None or cp.session is not None:
            return
        if body.get("supplying") and body.get("session_id") == orphan.id:
            del self._orphans[cp.id]
            s = ActiveSession(
                orphan.id,
                cp.id,
                orphan.driver_id,
                orphan.price,
                orphan.target_kwh,
                SessionStatus.SUPPLYING,
                Decimal(str(body.get("kwh", orphan.energy_kwh))),
            )
            cp.session = s
            if cp.state is CPState.ACTIVATED:
                self._fire(cp, Trigger.SUPPLY_STARTED, "supply resumed after Central restart")
        elif not body.get("session_id"):
            del self._orphans[cp.id]
            ticket, _ = await self._writer.call(
                partial(
                    store.settle,
                    session_id=orphan.id,
                    kwh=orphan.energy_kwh,
                    reason="lost",
                    source=SOURCE,
                )
            )
            self._deliver_ticket(ticket)

    # ---------------------------------------------------------------- sessions
    async def request_charge(
        self,
        cp_id: str,
        driver_id: str | None,
        target_kwh: Any = None,
        source_ip: str | None = None,
    ) -> ChargeDecision:
        """Authorise a charge at ``cp_id`` if it is ACTIVATED, free and its engine agrees."""
        target: Decimal | None = None
        if target_kwh is not None:
            try:
                target = Decimal(str(target_kwh))
            except InvalidOperation:
                target = Decimal(-1)
            if not target.is_finite() or target <= 0 or target > 1000:
                return self._deny(
                    cp_id,
                    driver_id,
                    "target kWh must be between 0 and 1000",
                    "bad_request",
                    source_ip,
                )
        cp = self.cps.get(cp_id)
        if cp is None or not cp.registered:
            return self._deny(cp_id, driver_id, "unknown charge point", "not_found", source_ip)
        busy = next(
            (
                c.id
                for c in self.cps.values()
                if c.session and driver_id and c.session.driver_id == driver_id
            ),
            None,
        )
        if busy is not None:
            return self._deny(
                cp_id, driver_id, f"driver already charging at {busy}", "conflict", source_ip
            )
        if cp.session is not None or cp.state is CPState.SUPPLYING:
            return self._deny(cp_id, driver_id, "charge point is busy", "conflict", source_ip)
        if cp.state is not CPState.ACTIVATED:
            reason = {
                CPState.STOPPED: "charge point is out of order",
                CPState.BROKEN: "charge point is broken",
                CPState.DISCONNECTED: "charge point is disconnected",
            }.get(cp.state, f"charge point is {cp.state}")
            return self._deny(cp_id, driver_id, reason, "conflict", source_ip)
        if cp.engine is None:
            return self._deny(
                cp_id, driver_id, "charge point engine is offline", "conflict", source_ip
            )
        s = ActiveSession(
            str(uuid.uuid4()), cp.id, driver_id, cp.price, target, authorized_at=self._clock()
        )
        cp.session = s  # reserved before any await: a second request sees it busy
        self.on_change(cp)
        await self._writer.call(partial(_persist_authorized, s=s, source_ip=source_ip))
        answer: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
        self._engine_answers[s.id] = answer
        cp.engine.send(
            MessageType.AUTHORIZE_SUPPLY,
            {
                "session_id": s.id,
                "driver_id": driver_id,
                "price_eur_kwh": float(s.price),
                "target_kwh": float(target) if target is not None else None,
            },
        )
        try:
            ok, why = await asyncio.wait_for(answer, self.authorize_timeout)
        except TimeoutError:
            ok, why = False, "charge point did not answer"
        finally:
            self._engine_answers.pop(s.id, None)
        if not ok or cp.session is not s:
            if cp.session is s:
                cp.session = None
                self.on_change(cp)
            await self._writer.call(partial(_persist_cancelled, session_id=s.id, reason=why))
            return self._deny(
                cp_id, driver_id, why or "charge point refused", "conflict", source_ip
            )
        return ChargeDecision(True, cp_id, session=s.to_dict())

    def _deny(
        self, cp_id: str, driver_id: str | None, reason: str, code: str, source_ip: str | None
    ) -> ChargeDecision:
        self._emit(
            Event(
                EventType.SESSION_DENIED,
                SOURCE,
                {"reason": reason},
                cp_id=cp_id,
                driver_id=driver_id,
                source_ip=source_ip,
            )
        )
        return ChargeDecision(False, cp_id, reason, code)

    def _expire_authorizations(self, now: float) -> None:
        for cp in self.cps.values():
            s = cp.session
            if (
                s
                and s.status == SessionStatus.AUTHORIZED
                and now - s.authorized_at > self.plug_timeout
            ):
                cp.session = None
                self._writer.submit(
                    partial(
                        _persist_cancelled, session_id=s.id, reason="vehicle not plugged in time"
                    )
                )
                self._tell_driver(
                    s,
                    MessageType.CHARGE_DENIED,
                    {"cp_id": cp.id, "reason": "vehicle not plugged in time"},
                )
                if cp.engine is not None:
                    cp.engine.send(MessageType.STOP, {"session_id": s.id, "reason": "expired"})
                self.on_change(cp)

    async def _settle(self, cp: ChargePointView, s: ActiveSession, reason: str) -> Ticket:
        """Close the live session: the CP is free at once, the ticket once it is durable."""
        cp.session = None
        if cp.state is CPState.SUPPLYING:
            trigger = Trigger.SUPPLY_ENDED_STOPPED if cp.holds else Trigger.SUPPLY_ENDED
            self._fire(cp, trigger, f"supply ended: {reason}")
        else:
            self.on_change(cp)
        ticket, _ = await self._writer.call(
            partial(store.settle, session_id=s.id, kwh=s.kwh, reason=reason, source=SOURCE)
        )
        self._deliver_ticket(ticket)
        return ticket

    def _end_supply(self, cp: ChargePointView, reason: str) -> None:
        """End whatever session the CP has, now, with the energy delivered so far."""
        s = cp.session
        if s is None:
            return
        if cp.engine is not None:
            cp.engine.send(MessageType.STOP, {"session_id": s.id, "reason": reason})
        if s.status == SessionStatus.AUTHORIZED:
            cp.session = None
            self._writer.submit(partial(_persist_cancelled, session_id=s.id, reason=reason))
            self._tell_driver(s, MessageType.CHARGE_DENIED, {"cp_id": cp.id, "reason": reason})
            return
        # SUPPLYING: the state change comes from the caller's own trigger.
        cp.session = None
        future = self._writer.submit(
            partial(store.settle, session_id=s.id, kwh=s.kwh, reason=reason, source=SOURCE)
        )
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._deliver_settled, f))

    def _deliver_settled(self, future: Any) -> None:
        if future.exception() is None:
            self._deliver_ticket(future.result()[0])
        else:
            log.error("settling a session failed", exc_info=future.exception())

    def _tell_driver(
        self, s: ActiveSession, msg_type: MessageType, body: Mapping[str, Any]
    ) -> None:
        link = self.drivers.get(s.driver_id) if s.driver_id else None
        if link is not None:
            link.send(msg_type, body)

    def _deliver_ticket(self, ticket: Ticket) -> None:
        link = self.drivers.get(ticket.driver_id) if ticket.driver_id else None
        if link is not None:
            link.send(MessageType.TICKET, ticket.to_body())
            self._writer.submit(partial(_mark_delivered, session_ids=[ticket.session_id]))

    async def stop_session(self, session_id: str, actor: str) -> Ticket:
        """Operator ends a session (live or left open by a crash)."""
        for cp in self.cps.values():
            if cp.session is not None and cp.session.id == session_id:
                if cp.engine is not None:
                    cp.engine.send(
                        MessageType.STOP, {"session_id": session_id, "reason": "operator"}
                    )
                if cp.session.status == SessionStatus.AUTHORIZED:
                    cp.session = None
                    self.on_change(cp)
                    await self._writer.call(
                        partial(
                            _persist_cancelled, session_id=session_id, reason="stopped by operator"
                        )
                    )
                    raise NetworkError("conflict", "session was not supplying; cancelled")
                return await self._settle(cp, cp.session, "stopped_by_operator")
        for cp_id, orphan in list(self._orphans.items()):
            if orphan.id == session_id:
                del self._orphans[cp_id]
        try:
            ticket, _ = await self._writer.call(
                partial(
                    store.settle,
                    session_id=session_id,
                    kwh=Decimal(0),
                    reason="stopped_by_operator",
                    source=actor,
                )
            )
        except LookupError:
            raise NetworkError("not_found", f"unknown session {session_id!r}") from None
        return ticket

    # ----------------------------------------------------------------- drivers
    def driver_up(self, driver_id: str, link: Link) -> None:
        old = self.drivers.get(driver_id)
        self.drivers[driver_id] = link
        if old is not None and old is not link:
            old.close("replaced by a new connection of the same driver")

    def driver_lost(self, driver_id: str, link: Link) -> None:
        if self.drivers.get(driver_id) is link:
            del self.drivers[driver_id]

    def free_cps(self) -> list[dict[str, Any]]:
        return [
            {"id": cp.id, "location": cp.location, "price_eur_kwh": float(cp.price)}
            for cp in sorted(self.cps.values(), key=lambda c: c.id)
            if cp.state is CPState.ACTIVATED and cp.session is None and cp.engine is not None
        ]

    def driver_session(self, driver_id: str) -> dict[str, Any] | None:
        for cp in self.cps.values():
            if cp.session is not None and cp.session.driver_id == driver_id:
                return cp.session.to_dict()
        return None

    # ---------------------------------------------------------------- operator
    async def stop(self, cp_id: str | None, actor: str, source_ip: str | None = None) -> int:
        """Stop one CP (or all): a running supply ends now; the CP shows Out of Order."""
        targets = [self.get(cp_id)] if cp_id else list(self.cps.values())
        for cp in targets:
            cp.holds.add(HOLD_OPERATOR)
            self._end_supply(cp, "stopped_by_operator")
            if cp.state in (CPState.ACTIVATED, CPState.SUPPLYING, CPState.STOPPED):
                self._fire(cp, Trigger.STOP, "stopped by operator")
            else:
                self.on_change(cp)
        await self._operator_record(targets, True, "stop", actor, source_ip)
        return len(targets)

    async def resume(self, cp_id: str | None, actor: str, source_ip: str | None = None) -> int:
        targets = [self.get(cp_id)] if cp_id else list(self.cps.values())
        for cp in targets:
            cp.holds.discard(HOLD_OPERATOR)
            if cp.state is CPState.STOPPED and not cp.holds:
                self._fire(cp, Trigger.RESUME, "resumed by operator")
            else:
                self.on_change(cp)
        await self._operator_record(targets, False, "resume", actor, source_ip)
        return len(targets)

    async def _operator_record(
        self,
        cps: list[ChargePointView],
        stopped: bool,
        command: str,
        actor: str,
        source_ip: str | None,
    ) -> None:
        ids = [cp.id for cp in cps]
        await self._writer.call(partial(_persist_operator_stop, cp_ids=ids, stopped=stopped))
        await self._record(
            Event(
                EventType.OPERATOR_COMMAND,
                SOURCE,
                {"command": command, "cp_ids": ids[:50], "count": len(ids)},
                cp_id=ids[0] if len(ids) == 1 else None,
                actor=actor,
                source_ip=source_ip,
            )
        )

    async def revoke_key(self, cp_id: str, actor: str, source_ip: str | None = None) -> None:
        """Invalidate the CP's session key: STOPPED until its monitor re-authenticates."""
        cp = self.get(cp_id)
        cp.holds.add(HOLD_REVOKED)
        cp.key = None
        self._end_supply(cp, "key_revoked")
        if cp.state in (CPState.ACTIVATED, CPState.SUPPLYING, CPState.STOPPED):
            self._fire(cp, Trigger.STOP, "key revoked")
        for link in (cp.monitor, cp.engine):
            if link is not None:
                link.send(MessageType.KEY_REVOKED, {"reason": "revoked by operator"})
                link.close("key revoked")
        cp.monitor = cp.engine = None
        self.on_change(cp)
        await self._record(
            Event(
                EventType.CP_KEY_REVOKED, SOURCE, {}, cp_id=cp.id, actor=actor, source_ip=source_ip
            )
        )

    async def set_price(
        self, cp_id: str, price: Any, actor: str, source_ip: str | None = None
    ) -> Decimal:
        cp = self.get(cp_id)
        try:
            value = Decimal(str(price))
        except InvalidOperation:
            value = Decimal(-1)
        if not value.is_finite() or not Decimal(0) <= value <= Decimal(100):
            raise NetworkError("bad_request", "price must be a number of €/kWh between 0 and 100")
        value = value.quantize(Decimal("0.0001"))
        old = cp.price
        cp.price = value
        await self._writer.call(partial(_persist_price, cp_id=cp.id, price=value))
        await self._record(
            Event(
                EventType.CP_PRICE_CHANGED,
                SOURCE,
                {"from": float(old), "to": float(value)},
                cp_id=cp.id,
                actor=actor,
                source_ip=source_ip,
            )
        )
        self.on_change(cp)
        return value

    # ----------------------------------------------------------------- weather
    async def weather_alert(
        self, location: str, temperature: float | None, actor: str, source_ip: str | None = None
    ) -> int:
        """Cold alert: idle CPs at the location stop now, supplying ones when they finish."""
        fresh = location not in self.alerts
        self.alerts.add(location)
        affected = [cp for cp in self.cps.values() if cp.location == location]
        for cp in affected:
            cp.holds.add(HOLD_WEATHER)
            if cp.state in (CPState.ACTIVATED, CPState.STOPPED):
                self._fire(cp, Trigger.STOP, f"weather alert in {location}")
            else:
                self.on_change(cp)
        if fresh:
            await self._writer.call(
                partial(_persist_alert, location=location, temperature=temperature, actor=actor)
            )
            await self._record(
                Event(
                    EventType.WEATHER_ALERT,
                    SOURCE,
                    {
                        "location": location,
                        "temperature_c": temperature,
                        "cp_ids": [cp.id for cp in affected],
                    },
                    actor=actor,
                    source_ip=source_ip,
                )
            )
        return len(affected)

    async def weather_clear(self, location: str, actor: str, source_ip: str | None = None) -> int:
        if location not in self.alerts:
            raise NetworkError("not_found", f"no weather alert for {location!r}")
        self.alerts.discard(location)
        affected = [cp for cp in self.cps.values() if cp.location == location]
        for cp in affected:
            cp.holds.discard(HOLD_WEATHER)
            if cp.state is CPState.STOPPED and not cp.holds:
                self._fire(cp, Trigger.RESUME, f"weather alert cleared in {location}")
            else:
                self.on_change(cp)
        await self._writer.call(
            partial(_persist_alert, location=location, temperature=None, actor=actor, clear=True)
        )
        await self._record(
            Event(
                EventType.WEATHER_CLEARED,
                SOURCE,
                {"location": location, "cp_ids": [cp.id for cp in affected]},
                actor=actor,
                source_ip=source_ip,
            )
        )
        return len(affected)

    def weather_reading(
        self,
        location: str,
        temperature: float | None,
        status: str,
        actor: str,
        reason: str | None = None,
    ) -> None:
        """Latest temperature (or UNKNOWN, with why) per location, shown to operators."""
        reading = {
            "temperature_c": temperature,
            "status": status,
            "reason": reason,
            "alert": location in self.alerts,
        }
        self.readings[location] = reading
        self._emit(
            Event(
                EventType.WEATHER_READING,
                SOURCE,
                {"location": location, **reading},
                actor=actor,
            )
        )

    # ---------------------------------------------------------------- reading
    def snapshot(self) -> list[dict[str, Any]]:
        return [cp.to_dict() for cp in sorted(self.cps.values(), key=lambda c: c.id)]

    def counts(self) -> dict[str, int]:
        out = {str(state): 0 for state in CPState}
        for cp in self.cps.values():
            if cp.registered:
                out[str(cp.state)] += 1
        return out


# -------------------------------------------------- units of database work
def _persist_state(session: Session, cp_id: str, old: CPState, new: CPState, reason: str) -> None:
    session.execute(update(ChargePoint).where(ChargePoint.id == cp_id).values(last_state=str(new)))
    record(
        session,
        Event(
            EventType.CP_STATE_CHANGED,
            SOURCE,
            {"from": str(old), "to": str(new), "reason": reason},
            cp_id=cp_id,
        ),
    )


def _persist_authorized(session: Session, s: ActiveSession, source_ip: str | None) -> None:
    session.add(
        ChargingSession(
            id=s.id,
            cp_id=s.cp_id,
            driver_id=s.driver_id,
            status=SessionStatus.AUTHORIZED,
            price_eur_kwh=s.price,
            target_kwh=s.target_kwh,
        )
    )
    record(
        session,
        Event(
            EventType.SESSION_AUTHORIZED,
            SOURCE,
            {
                "price_eur_kwh": float(s.price),
                "target_kwh": float(s.target_kwh) if s.target_kwh else None,
            },
            cp_id=s.cp_id,
            driver_id=s.driver_id,
            session_id=s.id,
            source_ip=source_ip,
        ),
    )


def _persist_cancelled(session: Session, session_id: str, reason: str) -> None:
    session.execute(
        update(ChargingSession)
        .where(ChargingSession.id == session_id, ChargingSession.status == SessionStatus.AUTHORIZED)
        .values(status=SessionStatus.CANCELLED, ended_at=utcnow(), end_reason=reason[:32])
    )


def _persist_started(session: Session, session_id: str, cp_id: str) -> None:
    row = session.get(ChargingSession, session_id)
    if row is None or row.status != SessionStatus.AUTHORIZED:
        return
    row.status, row.started_at = SessionStatus.SUPPLYING, utcnow()
    record(
        session,
        Event(
            EventType.SESSION_STARTED,
            SOURCE,
            {},
            cp_id=cp_id,
            driver_id=row.driver_id,
            session_id=session_id,
        ),
    )


def _persist_progress(session: Session, progress: dict[str, Any]) -> None:
    session.execute(
        update(ChargingSession)
        .where(
            ChargingSession.id == progress["session_id"],
            ChargingSession.status == SessionStatus.SUPPLYING,
        )
        .values(energy_kwh=Decimal(str(progress["kwh"])))
    )
    record(
        session,
        Event(
            EventType.SESSION_PROGRESS,
            SOURCE,
            progress,
            cp_id=progress["cp_id"],
            driver_id=progress["driver_id"],
            session_id=progress["session_id"],
        ),
    )


def _mark_delivered(session: Session, session_ids: list[str]) -> None:
    session.execute(
        update(ChargingSession)
        .where(ChargingSession.id.in_(session_ids))
        .values(ticket_delivered_at=utcnow())
    )


def _persist_operator_stop(session: Session, cp_ids: list[str], stopped: bool) -> None:
    session.execute(
        update(ChargePoint).where(ChargePoint.id.in_(cp_ids)).values(operator_stopped=stopped)
    )


def _persist_price(session: Session, cp_id: str, price: Decimal) -> None:
    session.execute(update(ChargePoint).where(ChargePoint.id == cp_id).values(price_eur_kwh=price))


def _persist_alert(
    session: Session, location: str, temperature: float | None, actor: str, clear: bool = False
) -> None:
    existing = session.get(WeatherAlert, location)
    if clear:
        if existing is not None:
            session.delete(existing)
    elif existing is None:
        session.add(WeatherAlert(location=location, temperature_c=temperature, raised_by=actor))


def pending_tickets(session: Session, driver_id: str) -> list[dict[str, Any]]:
    """Tickets of ``driver_id`` never delivered; marks them delivered."""
    rows = session.scalars(
        select(ChargingSession)
        .where(
            ChargingSession.driver_id == driver_id,
            ChargingSession.status == SessionStatus.ENDED,
            ChargingSession.ticket_delivered_at.is_(None),
        )
        .order_by(ChargingSession.ended_at)
    ).all()
    for row in rows:
        row.ticket_delivered_at = utcnow()
    return [Ticket.of(r).to_body() for r in rows]


def history(session: Session, driver_id: str, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(ChargingSession)
        .where(
            ChargingSession.driver_id == driver_id,
            ChargingSession.status == SessionStatus.ENDED,
        )
        .order_by(ChargingSession.ended_at.desc())
        .limit(limit)
    ).all()
    return [Ticket.of(r).to_body() for r in rows]
