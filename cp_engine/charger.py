"""The engine's domain core: authorisations, plug/unplug, metering, faults, reports.

No sockets and no asyncio: what it says to Central goes through the injected ``send``
(which answers False when there is no live link), what the user should see goes
through ``notify``, and time comes from ``clock``. Every change of the supply is written
to the :class:`~cp_engine.journal.Journal` *before* it is reported, so a report can
always be repeated after a crash; a report leaves the journal only with its ticket.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from common.chargepoint.terminal import Level
from common.protocol.messages import ErrorBody, ErrorCode, MessageType
from cp_engine.journal import ActiveSupply, Journal, JournalState, SupplyReport
from cp_engine.meter import advance, cost
from cp_engine.supply import SupplyEvent, SupplyState, next_state

__all__ = ["Charger", "Notify", "Send", "Session"]

Send = Callable[[MessageType, dict[str, Any]], bool]
Notify = Callable[[Level, str], None]

REPORT_RETRY_FIRST = 5.0  # seconds before repeating an unanswered supply_ended
REPORT_RETRY_CAP = 60.0
# Central no longer holds (or never held) the supply this engine is running: stop it.
_SUPPLY_REFUSALS = frozenset({ErrorCode.NO_SESSION, ErrorCode.CP_UNAVAILABLE})


@dataclass
class Session:
    """The session this engine is authorised for (or supplying)."""

    id: str
    driver_id: str | None
    price: float
    target_kwh: float | None
    kwh: float = 0.0
    kw: float = 0.0

    @property
    def who(self) -> str:
        return f"driver {self.driver_id}" if self.driver_id else "a local user"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


class Charger:
    """One charger's supply logic.

    Args:
        journal: where the supply is persisted.
        send: hands a message to Central; returns False when not connected.
        notify: shows a line to the user.
        kw: charging power.
        speed: simulated seconds per real second.
        default_target: kWh to deliver when an authorisation names no target (None: until
            unplugged).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        journal: Journal,
        send: Send,
        notify: Notify,
        *,
        kw: float = 11.0,
        speed: float = 1.0,
        default_target: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._journal = journal
        self._send = send
        self._notify = notify
        self.kw = kw
        self.speed = speed
        self.default_target = default_target
        self._clock = clock
        self.state = SupplyState.IDLE
        self.session: Session | None = None
        self.healthy = True
        self.fault = ""
        self.supervised = False  # a monitor is connected
        self._last_metered = 0.0
        self._retry_at = 0.0
        self._retry_every = REPORT_RETRY_FIRST
        self.records = JournalState()

    # ----------------------------------------------------------------- start
    def recover(self) -> None:
        """Load the journal; a supply cut short by a crash becomes a report to deliver."""
        state, warning = self._journal.load()
        if warning:
            self._notify(Level.BAD, warning)
        state, cut = state.recovered()
        self._save(state)
        if cut is not None:
            self._notify(
                Level.WARN,
                f"Recovered from the journal: session {cut.session_id} was cut short by a "
                f"restart at {cut.kwh:.3f} kWh; it will be reported to Central",
            )
        for report in self.records.unsettled:
            if report is not cut:
                self._notify(
                    Level.WARN,
                    f"Unsettled report in the journal: session {report.session_id}, "
                    f"{report.kwh:.3f} kWh ({report.reason})",
                )

    def _save(self, state: JournalState) -> None:
        self._journal.save(state)
        self.records = state

    # -------------------------------------------------------------- Central
    def connected(self) -> None:
        """Just connected to Central: say where we stand, then repeat unsettled reports."""
        s = self.session
        if s is not None and self.state is SupplyState.SUPPLYING:
            status = {"session_id": s.id, "supplying": True, "kwh": s.kwh}
        elif self.records.unsettled:
            last = self.records.unsettled[-1]
            status = {"session_id": last.session_id, "supplying": False, "kwh": last.kwh}
        else:
            status = {"session_id": None, "supplying": False, "kwh": 0.0}
        self._send(MessageType.STATUS, status)
        self._retry_every = REPORT_RETRY_FIRST
        self._report_all()

    def _report_all(self) -> None:
        sent = False
        for report in self.records.unsettled:
            sent = self._send(MessageType.SUPPLY_ENDED, report.body()) or sent
        if sent:
            self._retry_at = self._clock() + self._retry_every

    def authorize(self, body: Mapping[str, Any]) -> bool:
        """Central's ``authorize_supply``: accept (``charge_authorized``) or refuse."""
        session_id = body.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            return False
        reason = ""
        if not self.healthy:
            reason = "charge point is out of order"
        elif not self.supervised:
            reason = "charge point has no monitor"
        elif self.state is not SupplyState.IDLE:
            reason = "charge point is busy"
        if reason:
            self._send(MessageType.CHARGE_DENIED, {"session_id": session_id, "reason": reason})
            self._notify(Level.WARN, f"Refused session {session_id}: {reason}")
            return False
        driver = body.get("driver_id")
        target = _number(body.get("target_kwh"))
        self.state = next_state(self.state, SupplyEvent.AUTHORIZE)
        self.session = Session(
            session_id,
            str(driver) if driver else None,
            _number(body.get("price_eur_kwh")) or 0.0,
            target if target is not None else self.default_target,
        )
        self._send(MessageType.CHARGE_AUTHORIZED, {"session_id": session_id})
        aim = f"{self.session.target_kwh:g} kWh" if self.session.target_kwh else "no target"
        self._notify(
            Level.GOOD,
            f"Authorised: session {session_id} for {self.session.who} ({aim}, "
            f"{self.session.price:g} €/kWh). Plug in the vehicle (p)",
        )
        return True

    def stop(self, body: Mapping[str, Any]) -> None:
        """Central's ``stop``: end the supply at once (or drop the authorisation)."""
        s = self.session
        reason = str(body.get("reason") or "stopped")
        if s is None or body.get("session_id") not in (None, s.id):
            return
        if self.state is SupplyState.AUTHORIZED:
            self.state = next_state(self.state, SupplyEvent.STOP)
            self.session = None
            self._notify(Level.WARN, f"Authorisation of session {s.id} withdrawn: {reason}")
            return
        self._notify(Level.WARN, f"Stopped by Central: {reason}")
        self._end(SupplyEvent.STOP, reason)

    def ticket(self, body: Mapping[str, Any]) -> None:
        """A ticket answers a ``supply_ended``: the report can leave the journal."""
        session_id = str(body.get("session_id"))
        state, report = self.records.settle(session_id)
        if report is not None:
            self._save(state)
        kwh, total = _number(body.get("kwh")) or 0.0, _number(body.get("total_eur")) or 0.0
        self._notify(
            Level.GOOD,
            f"Ticket for session {session_id}: {kwh:.3f} kWh, {total:.2f} € "
            f"({body.get('reason') or 'ended'}); settled",
        )

    def refused(self, error: ErrorBody) -> None:
        """Central's ``error``: stop a supply it refused, drop a report it will never
        settle, and show the rest. Decided on the code and session, never the wording.
        """
        s = self.session
        if (
            self.state is SupplyState.SUPPLYING
            and s is not None
            and error.code in _SUPPLY_REFUSALS
            and error.session_id in (None, s.id)
        ):
            self.state = next_state(self.state, SupplyEvent.STOP)
            self.session = None
            self._save(self.records.discard())
            self._notify(
                Level.BAD, f"Central refused supply of session {s.id}: {error.reason}; stopped"
            )
            return
        if error.code == ErrorCode.UNKNOWN_SESSION:
            for report in self.records.unsettled:
                if report.session_id == error.session_id:
                    state, _ = self.records.settle(report.session_id)
                    self._save(state)
                    self._notify(
                        Level.BAD,
                        f"Central does not know session {report.session_id}; its report "
                        f"({report.kwh:.3f} kWh) was dropped",
                    )
                    return
        self._notify(Level.WARN, f"Central: {error.reason} ({error.code})")

    def request_charge(self, target_kwh: float | None) -> None:
        """The CP's own menu asks Central for a charge (a walk-in user)."""
        if self.state is not SupplyState.IDLE:
            self._notify(Level.WARN, f"Cannot request a charge while {self.state}")
            return
        target = target_kwh if target_kwh is not None else self.default_target
        body: dict[str, Any] = {"target_kwh": target} if target else {}
        if self._send(MessageType.CHARGE_REQUEST, body):
            self._notify(Level.INFO, "Charge requested from Central")
        else:
            self._notify(Level.BAD, "Not connected to Central: cannot request a charge")

    # ----------------------------------------------------------------- user
    def plug(self, session_id: str | None = None) -> None:
        """The vehicle is plugged in: supply starts (``supply_started``)."""
        s = self.session
        if self.state is not SupplyState.AUTHORIZED or s is None:
            if session_id is None:  # only a user's key press deserves an answer
                what = "a vehicle is already charging" if self.session else "no authorisation"
                self._notify(Level.WARN, f"Cannot plug in: {what}")
            return
        if session_id is not None and session_id != s.id:
            return
        self.state = next_state(self.state, SupplyEvent.PLUG)
        s.kw = self.kw
        self._save(self.records.start(ActiveSupply(s.id, s.driver_id, s.price, s.target_kwh)))
        self._last_metered = self._clock()
        self._send(MessageType.SUPPLY_STARTED, {"session_id": s.id})
        self._notify(Level.GOOD, f"Vehicle plugged in: supplying session {s.id} at {s.kw:g} kW")

    def unplug(self) -> None:
        if self.state is not SupplyState.SUPPLYING:
            what = "the vehicle is not plugged in yet" if self.session else "nothing is plugged"
            self._notify(Level.WARN, f"Cannot unplug: {what}")
            return
        self._meter()
        self._end(SupplyEvent.UNPLUG, "unplugged")

    def set_health(self, ok: bool, reason: str = "") -> bool:
        """Engine KO (a fault) or OK again; a KO stops a supply at once. True if changed."""
        if ok == self.healthy:
            return False
        self.healthy, self.fault = ok, "" if ok else (reason or "engine KO")
        if ok:
            self._notify(Level.GOOD, "Engine OK: ready to supply")
            return True
        self._notify(Level.BAD, f"Engine KO: {self.fault}")
        if self.state is SupplyState.SUPPLYING:
            self._meter()
            self._end(SupplyEvent.FAULT, "fault")
        elif self.state is SupplyState.AUTHORIZED:
            self.state = next_state(self.state, SupplyEvent.FAULT)
            self.session = None
        return True

    def set_supervised(self, supervised: bool) -> None:
        """The monitor came or went; without supervision a supply stops (DESIGN.md)."""
        self.supervised = supervised
        if supervised or self.state is SupplyState.IDLE:
            return
        if self.state is SupplyState.AUTHORIZED:
            self.state = next_state(self.state, SupplyEvent.STOP)
            self.session = None
            self._notify(Level.WARN, "Monitor lost: authorisation dropped")
            return
        self._notify(Level.WARN, "Monitor lost: stopping the supply")
        self._meter()
        self._end(SupplyEvent.STOP, "monitor_lost")

    def shutdown(self) -> None:
        """The engine is quitting: a running supply ends and is reported."""
        if self.state is SupplyState.SUPPLYING:
            self._meter()
            self._end(SupplyEvent.SHUTDOWN, "engine_shutdown")
        elif self.state is SupplyState.AUTHORIZED:
            self.state = next_state(self.state, SupplyEvent.SHUTDOWN)
            self.session = None

    # ----------------------------------------------------------------- time
    def tick(self) -> None:
        """Once a second: meter, journal, telemetry; end at the target; repeat reports."""
        s = self.session
        if self.state is SupplyState.SUPPLYING and s is not None:
            reached = self._meter()
            self._send(MessageType.TELEMETRY, {"session_id": s.id, "kw": s.kw, "kwh": s.kwh})
            self._notify(
                Level.INFO,
                f"Supplying {s.id}: {s.kw:g} kW, {s.kwh:.3f} kWh, {cost(s.kwh, s.price):.2f} €",
            )
            if reached:
                self._end(SupplyEvent.TARGET_REACHED, "target_reached")
        if self.records.unsettled and self._clock() >= self._retry_at:
            self._retry_every = min(self._retry_every * 2, REPORT_RETRY_CAP)
            self._report_all()

    def _meter(self) -> bool:
        """Bring the meter up to now and journal it; True once the target is reached."""
        s = self.session
        assert s is not None
        now = self._clock()
        reading = advance(s.kwh, s.kw, now - self._last_metered, self.speed, s.target_kwh)
        self._last_metered = now
        s.kwh = reading.kwh
        self._save(self.records.metered(s.kwh))
        return reading.reached

    def _end(self, event: SupplyEvent, reason: str) -> None:
        s = self.session
        assert s is not None
        self.state = next_state(self.state, event)
        self.session = None
        state, report = self.records.end(reason)
        self._save(state)  # durable before anyone is told
        if report is None:
            report = SupplyReport(s.id, s.driver_id, s.price, s.kwh, reason)
        delivered = self._send(MessageType.SUPPLY_ENDED, report.body())
        self._retry_at = self._clock() + self._retry_every
        tail = "" if delivered else "; Central unreachable, kept in the journal"
        self._notify(
            Level.GOOD if reason in ("unplugged", "target_reached") else Level.WARN,
            f"Supply ended ({reason}): session {s.id}, {s.kwh:.3f} kWh, "
            f"{cost(s.kwh, s.price):.2f} €{tail}",
        )

    # --------------------------------------------------------------- screen
    def status_lines(self) -> list[tuple[str, str]]:
        s = self.session
        rows = [
            ("Supply", str(self.state)),
            ("Health", "OK" if self.healthy else f"KO ({self.fault})"),
            ("Monitor", "connected" if self.supervised else "not connected"),
        ]
        if s is not None:
            rows.append(("Session", f"{s.id} for {s.who}"))
            rows.append(("Energy", f"{s.kwh:.3f} kWh, {cost(s.kwh, s.price):.2f} €"))
        for r in self.records.unsettled:
            rows.append(("Unsettled", f"{r.session_id}: {r.kwh:.3f} kWh ({r.reason})"))
        return rows
