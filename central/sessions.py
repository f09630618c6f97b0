"""Charging sessions: authorise, start, meter, settle exactly once, deliver the ticket.

Authority (docs/central.md): the CP a message acts on is always the connection's own,
never an id from the body. An engine may report only on the session Central holds for
its CP, or on an *orphan* of its CP (a session that was open when Central last
stopped); its answers to an authorisation are matched on (CP, session). Energy only
grows, and only as fast as a charger can deliver (:mod:`central.energy`). A refusal
raises a :class:`~central.errors.CentralError` and changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Any

from central import forward, reads, store
from central.energy import DEFAULT_MAX_KW, check_energy
from central.errors import CentralError, Conflict, InvalidInput, NotFound
from central.fleet import SOURCE, Fleet
from central.model import ActiveSession, ChargePointView, Link
from central.reads import OpenSession
from central.states import CPState, Trigger
from central.store import Ticket
from common.db.models import SessionStatus
from common.events import Event, EventType
from common.protocol.messages import (
    EngineReport,
    ErrorCode,
    MessageType,
    SupplyEnded,
    Telemetry,
)

__all__ = ["Sessions"]

log = logging.getLogger(__name__)

MAX_TARGET_KWH = Decimal(1000)
_UNAVAILABLE = {
    CPState.STOPPED: "charge point is out of order",
    CPState.BROKEN: "charge point is broken",
    CPState.DISCONNECTED: "charge point is disconnected",
}


class Sessions:
    """Every session's life, from request to ticket.

    Args:
        fleet: the live state.
        authorize_timeout: how long the engine has to accept an authorisation.
        plug_timeout: how long an authorised session waits for the vehicle.
        max_kw: the highest power any CP of the network supplies (the energy bound).
    """

    def __init__(
        self,
        fleet: Fleet,
        *,
        authorize_timeout: float = 5.0,
        plug_timeout: float = 120.0,
        max_kw: Decimal = DEFAULT_MAX_KW,
    ) -> None:
        self._fleet = fleet
        self.authorize_timeout = authorize_timeout
        self.plug_timeout = plug_timeout
        self.max_kw = max_kw
        self._orphans: dict[str, OpenSession] = {}  # cp_id -> session open at last stop
        self._answers: dict[tuple[str, str], asyncio.Future[tuple[bool, str]]] = {}

    def load(self, open_sessions: Iterable[OpenSession]) -> None:
        """Sessions open when Central last stopped wait for their engine's word."""
        for orphan in open_sessions:
            self._orphans[orphan.cp_id] = orphan

    def adopt(self, cp_id: str, open_sessions: Iterable[OpenSession]) -> None:
        """This process now serves the CP: its open sessions (another process's, which
        stopped) wait for its engine's word, as after a restart."""
        self._orphans.pop(cp_id, None)
        self.load(s for s in open_sessions if s.cp_id == cp_id)

    # ------------------------------------------------------------ requests
    async def request(
        self,
        cp_id: str,
        driver_id: str | None,
        target_kwh: Decimal | None = None,
        source_ip: str | None = None,
    ) -> ActiveSession:
        """Authorise a charge at ``cp_id`` if it is ACTIVATED, free and its engine agrees.

        Raises:
            CentralError: the charge is denied (also recorded as ``session.denied``).
        """
        cp = self._fleet.cps.get(cp_id)
        if cp is not None and cp.remote and cp.owner is not None:
            return await forward.request_at_owner(self._fleet, cp, driver_id, target_kwh, source_ip)
        try:
            return await self._authorize(cp_id, driver_id, target_kwh, source_ip)
        except CentralError as exc:
            self._fleet.emit(
                Event(
                    EventType.SESSION_DENIED,
                    SOURCE,
                    {"reason": exc.message, "code": str(exc.code)},
                    cp_id=cp_id,
                    driver_id=driver_id,
                    source_ip=source_ip,
                )
            )
            raise

    async def _authorize(
        self, cp_id: str, driver_id: str | None, target: Decimal | None, source_ip: str | None
    ) -> ActiveSession:
        if target is not None and not 0 < target <= MAX_TARGET_KWH:
            raise InvalidInput(f"target kWh must be between 0 and {MAX_TARGET_KWH}")
        fleet = self._fleet
        cp = fleet.cps.get(cp_id)
        if cp is None or not cp.registered:
            raise NotFound("unknown charge point", code=ErrorCode.UNKNOWN_CP)
        if driver_id is not None:
            busy = next(
                (
                    c.id
                    for c in fleet.cps.values()
                    if c.session and c.session.driver_id == driver_id
                ),
                None,
            )
            if busy is not None:
                raise Conflict(f"driver already charging at {busy}", code=ErrorCode.DRIVER_BUSY)
        if cp.session is not None or cp.state is CPState.SUPPLYING:
            raise Conflict("charge point is busy", code=ErrorCode.CP_BUSY)
        if cp.state is not CPState.ACTIVATED:
            raise Conflict(_UNAVAILABLE.get(cp.state, f"charge point is {cp.state}"))
        if cp.engine is None or cp.remote:
            raise Conflict("charge point engine is offline")
        s = ActiveSession(
            str(uuid.uuid4()), cp.id, driver_id, cp.price, target, authorized_at=fleet.clock()
        )
        cp.session = s  # reserved before any await: a second request sees it busy
        await fleet.writer.call(
            partial(
                store.persist_authorized,
                session_id=s.id,
                cp_id=cp.id,
                driver_id=driver_id,
                price=s.price,
                target_kwh=target,
                source_ip=source_ip,
            )
        )
        ok, why = await self._ask_engine(cp, s)
        if ok and cp.session is s:
            return s
        if cp.session is s:
            cp.session = None
        if cp.engine is not None:
            cp.engine.send(MessageType.STOP, {"session_id": s.id, "reason": "withdrawn"})
        await fleet.writer.call(partial(store.persist_cancelled, session_id=s.id, reason=why))
        raise Conflict(why or "charge point refused", code=ErrorCode.ENGINE_REFUSED)

    async def _ask_engine(self, cp: ChargePointView, s: ActiveSession) -> tuple[bool, str]:
        # While the session was written, the engine may have gone, or a stop ended it.
        if cp.engine is None:
            return False, "charge point engine is offline"
        if cp.session is not s:
            return False, "the charge point stopped before its engine was asked"
        key = (cp.id, s.id)
        answer: asyncio.Future[tuple[bool, str]] = asyncio.get_running_loop().create_future()
        self._answers[key] = answer
        cp.engine.send(
            MessageType.AUTHORIZE_SUPPLY,
            {
                "session_id": s.id,
                "driver_id": s.driver_id,
                "price_eur_kwh": float(s.price),
                "target_kwh": float(s.target_kwh) if s.target_kwh is not None else None,
            },
        )
        try:
            return await asyncio.wait_for(answer, self.authorize_timeout)
        except TimeoutError:
            return False, "charge point did not answer"
        finally:
            self._answers.pop(key, None)

    def answer(self, cp: ChargePointView, session_id: str, accepted: bool, reason: str) -> None:
        """The engine's ``charge_authorized`` / ``charge_denied`` for its own CP.

        Raises:
            NotFound: ``unknown_session``: no authorisation of this CP awaits that answer.
        """
        answer = self._answers.pop((cp.id, session_id), None)
        if answer is None or answer.done():
            raise NotFound(
                f"no authorisation of session {session_id} awaits an answer here",
                code=ErrorCode.UNKNOWN_SESSION,
                session_id=session_id,
            )
        answer.set_result((accepted, reason))
        s = cp.session
        if accepted and s is not None and s.id == session_id:
            # Told here, before any later message of this engine is handled, so the
            # driver always hears "authorised" before "supply started".
            self._fleet.tell_driver(s.driver_id, MessageType.CHARGE_AUTHORIZED, s.to_dict())

    # -------------------------------------------------------------- supply
    def started(self, cp: ChargePointView, session_id: str) -> None:
        """The vehicle is plugged in at the CP: its authorised session supplies."""
        s = cp.session
        if s is None or s.id != session_id or s.status != SessionStatus.AUTHORIZED:
            raise Conflict(
                "no authorised session to start", code=ErrorCode.NO_SESSION, session_id=session_id
            )
        if cp.state is not CPState.ACTIVATED:
            raise Conflict(f"cannot supply while {cp.state}", session_id=session_id)
        fleet = self._fleet
        s.status = SessionStatus.SUPPLYING
        s.started_at = fleet.wall()
        fleet.writer.submit(partial(store.persist_started, session_id=s.id, cp_id=cp.id))
        fleet.fire(cp, Trigger.SUPPLY_STARTED, f"supplying {s.driver_id or 'local user'}")
        fleet.tell_driver(
            s.driver_id, MessageType.SUPPLY_STARTED, {"session_id": s.id, "cp_id": cp.id}
        )

    def telemetry(self, cp: ChargePointView, t: Telemetry) -> None:
        """Energy so far of the CP's supplying session."""
        s = cp.session
        if s is None or s.id != t.session_id or s.status != SessionStatus.SUPPLYING:
            raise Conflict(
                "telemetry for a session this charge point is not supplying",
                code=ErrorCode.NO_SESSION,
                session_id=t.session_id,
            )
        check_energy(self.max_kw, s.kwh, t.kwh, self._since(s.started_at), s.id)
        if t.kw > self.max_kw:
            raise InvalidInput(
                f"{t.kw} kW is above the network's {self.max_kw} kW",
                code=ErrorCode.BAD_ENERGY,
                session_id=s.id,
            )
        s.kwh, s.kw = t.kwh, t.kw
        progress = s.to_dict()
        self._fleet.writer.submit(partial(store.persist_progress, progress=progress))
        self._fleet.tell_driver(s.driver_id, MessageType.TELEMETRY, progress)

    async def ended(self, cp: ChargePointView, link: Link, report: SupplyEnded) -> Ticket:
        """The engine's ``supply_ended``: settle (once) and answer with the ticket.

        Raises:
            NotFound: ``unknown_session``: not a session of this CP.
            InvalidInput: ``bad_energy``.
        """
        sid = report.session_id
        s = cp.session
        if s is not None and s.id == sid:
            check_energy(self.max_kw, s.kwh, report.kwh, self._since(s.started_at), sid)
            s.kwh = report.kwh
            ticket = await self.settle(cp, s, report.reason)
        else:
            kwh = Decimal(0)  # a repeated report: the ticket stands as recorded
            orphan = self._orphans.get(cp.id)
            if orphan is not None and orphan.id == sid:
                elapsed = self._since(orphan.started_at)
                check_energy(self.max_kw, orphan.energy_kwh, report.kwh, elapsed, sid)
                del self._orphans[cp.id]
                kwh = report.kwh
            ticket = await self._settle_row(sid, kwh, report.reason, cp.id)
        link.send(MessageType.TICKET, ticket.to_body())
        return ticket

    async def reconcile(self, cp: ChargePointView, report: EngineReport) -> None:
        """After (re)connecting, the engine says whether it is supplying an orphan."""
        orphan = self._orphans.get(cp.id)
        if orphan is None or cp.session is not None:
            return
        if report.supplying and report.session_id == orphan.id:
            elapsed = self._since(orphan.started_at)
            check_energy(self.max_kw, orphan.energy_kwh, report.kwh, elapsed, orphan.id)
            del self._orphans[cp.id]
            cp.session = ActiveSession(
                orphan.id,
                cp.id,
                orphan.driver_id,
                orphan.price,
                orphan.target_kwh,
                SessionStatus.SUPPLYING,
                report.kwh,
                started_at=orphan.started_at,
            )
            if cp.state is CPState.ACTIVATED:
                self._fleet.fire(cp, Trigger.SUPPLY_STARTED, "supply resumed after Central restart")
        elif report.session_id is None:
            del self._orphans[cp.id]
            await self._settle_row(orphan.id, orphan.energy_kwh, "lost", cp.id)

    def _since(self, started_at: datetime | None) -> float:
        """Seconds of supply so far (none before the vehicle is plugged in)."""
        if started_at is None:
            return 0.0
        return (self._fleet.wall() - started_at).total_seconds()

    # ---------------------------------------------------------- settlement
    async def settle(self, cp: ChargePointView, s: ActiveSession, reason: str) -> Ticket:
        """Close the live session: the CP is free at once, the ticket once it is durable."""
        cp.session = None
        if cp.state is CPState.SUPPLYING:
            trigger = Trigger.SUPPLY_ENDED_STOPPED if cp.holds else Trigger.SUPPLY_ENDED
            self._fleet.fire(cp, trigger, f"supply ended: {reason}")
        return await self._settle_row(s.id, s.kwh, reason, cp.id)

    async def _settle_row(
        self, session_id: str, kwh: Decimal, reason: str, cp_id: str | None, source: str = SOURCE
    ) -> Ticket:
        settle = partial(
            store.settle, session_id=session_id, kwh=kwh, reason=reason, source=source, cp_id=cp_id
        )
        try:
            ticket, _ = await self._fleet.writer.call(settle)
        except LookupError:
            raise NotFound(
                f"unknown session {session_id}",
                code=ErrorCode.UNKNOWN_SESSION,
                session_id=session_id,
            ) from None
        self.deliver_ticket(ticket)
        return ticket

    def end_supply(self, cp: ChargePointView, reason: str) -> None:
        """End whatever session the CP has, now, with the energy delivered so far.

        The CP's state change comes from the caller's own trigger.
        """
        s = cp.session
        if s is None:
            return
        cp.session = None
        fleet = self._fleet
        if cp.engine is not None:
            cp.engine.send(MessageType.STOP, {"session_id": s.id, "reason": reason})
        if s.status == SessionStatus.AUTHORIZED:
            fleet.writer.submit(partial(store.persist_cancelled, session_id=s.id, reason=reason))
            fleet.tell_driver(
                s.driver_id, MessageType.CHARGE_DENIED, {"cp_id": cp.id, "reason": reason}
            )
            return
        future = fleet.writer.submit(
            partial(store.settle, session_id=s.id, kwh=s.kwh, reason=reason)
        )
        loop = asyncio.get_running_loop()
        future.add_done_callback(lambda f: loop.call_soon_threadsafe(self._deliver_settled, f))

    def _deliver_settled(self, future: Any) -> None:
        if future.exception() is None:
            self.deliver_ticket(future.result()[0])
        else:
            log.error("settling a session failed", exc_info=future.exception())

    def deliver_ticket(self, ticket: Ticket) -> None:
        if self._fleet.tell_driver(ticket.driver_id, MessageType.TICKET, ticket.to_body()):
            self._fleet.writer.submit(
                partial(store.mark_delivered, session_ids=[ticket.session_id])
            )

    def expire(self) -> None:
        """Withdraw authorisations whose vehicle was not plugged in time."""
        now = self._fleet.clock()
        for cp in self._fleet.cps.values():
            s = cp.session
            if (
                not cp.remote
                and s
                and s.status == SessionStatus.AUTHORIZED
                and now - s.authorized_at > self.plug_timeout
            ):
                self.end_supply(cp, "vehicle not plugged in time")

    async def stop(self, session_id: str, actor: str) -> Ticket:
        """The operator ends a session (live, or left open by a crash).

        Raises:
            Conflict: ``not_supplying``: it was only authorised (it is cancelled).
            NotFound: ``unknown_session``.
        """
        for cp in self._fleet.cps.values():
            s = cp.session
            if s is None or s.id != session_id:
                continue
            if cp.remote:
                return await forward.stop_at_owner(self._fleet, session_id, actor)
            if s.status == SessionStatus.AUTHORIZED:
                self.end_supply(cp, "stopped by operator")
                raise Conflict(
                    "session was not supplying; cancelled",
                    code=ErrorCode.NOT_SUPPLYING,
                    session_id=session_id,
                )
            if cp.engine is not None:
                cp.engine.send(MessageType.STOP, {"session_id": session_id, "reason": "operator"})
            return await self.settle(cp, s, "stopped_by_operator")
        for cp_id, orphan in list(self._orphans.items()):
            if orphan.id == session_id:
                del self._orphans[cp_id]
        return await self._settle_row(session_id, Decimal(0), "stopped_by_operator", None, actor)

    # ------------------------------------------------------------- drivers
    async def history(self, driver_id: str) -> list[dict[str, Any]]:
        return await self._fleet.writer.call(partial(reads.history, driver_id=driver_id))

    async def status(self, driver_id: str) -> dict[str, Any]:
        """The driver's live session and the tickets it missed while away."""
        tickets = await self._fleet.writer.call(partial(store.pending_tickets, driver_id=driver_id))
        return {"session": self._fleet.driver_session(driver_id), "missed_tickets": tickets}
