"""One charge as the driver sees it: a sans-IO tracker fed with Central's messages.

The tracker never touches a socket or a clock: the caller passes every message Central
sends (and the time it arrived), gets back the :class:`Step` to show, and asks the
tracker how the charge ended. All phase changes are in one table, ``_TRANSITIONS``.

    requested ──charge_authorized──► authorized ──supply_started──► supplying
        │                               │                              │
        ├──charge_denied──► denied ◄────┘ (not plugged in time,        │
        │                                  CP stopped before plugging)  │
        └──────────────────────────── ticket ──► finished ◄────────────┘

Central can answer ``supply_started`` before the driver has read ``charge_authorized``
(they come from different tasks), so a requested charge may jump straight to supplying.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from common.protocol.messages import Message, MessageType

__all__ = [
    "ChargeTracker",
    "Outcome",
    "OutcomeKind",
    "Phase",
    "Progress",
    "Step",
    "StepKind",
]


class Phase(StrEnum):
    REQUESTED = "requested"
    AUTHORIZED = "authorized"
    SUPPLYING = "supplying"
    FINISHED = "finished"  # the ticket arrived
    DENIED = "denied"  # refused, or the authorisation lapsed
    LOST = "lost"  # Central no longer knows the charge and holds no ticket for us


TERMINAL = frozenset({Phase.FINISHED, Phase.DENIED, Phase.LOST})


class StepKind(StrEnum):
    AUTHORIZED = "authorized"
    DENIED = "denied"
    PLUGGED = "plugged"
    STARTED = "started"  # plugged in before the authorisation was read: both at once
    PROGRESS = "progress"
    TICKET = "ticket"
    OTHER_TICKET = "other_ticket"  # a ticket of another session (one the driver missed)
    RESUMED = "resumed"  # Central still holds our charge (after a reconnection)
    LOST = "lost"


@dataclass(frozen=True)
class Step:
    """Something that happened to the charge, with the body Central sent."""

    kind: StepKind
    cp_id: str
    body: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Progress:
    cp_id: str
    kw: float
    kwh: float
    eur: float
    elapsed: float


class OutcomeKind(StrEnum):
    CHARGED = "charged"  # a ticket
    DENIED = "denied"
    LOST = "lost"
    GAVE_UP = "gave up"
    NOT_RUN = "not run"


@dataclass(frozen=True)
class Outcome:
    """How one service ended, for the summary table and the exit code."""

    cp_id: str
    kind: OutcomeKind
    reason: str = ""
    kwh: float | None = None
    eur: float | None = None
    session_id: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.CHARGED

    def describe(self) -> str:
        """``ticket (unplugged)``, ``denied: unknown charge point``..."""
        if self.kind is OutcomeKind.CHARGED:
            return f"ticket ({self.reason})" if self.reason else "ticket"
        return f"{self.kind}: {self.reason}" if self.reason else str(self.kind)


# (phase, message type) -> (next phase, step shown or None). Anything else is not about
# this charge's progress and is ignored (tickets of other sessions excepted, see feed()).
_TRANSITIONS: dict[tuple[Phase, MessageType], tuple[Phase, StepKind | None]] = {
    (Phase.REQUESTED, MessageType.CHARGE_AUTHORIZED): (Phase.AUTHORIZED, StepKind.AUTHORIZED),
    (Phase.REQUESTED, MessageType.CHARGE_DENIED): (Phase.DENIED, StepKind.DENIED),
    (Phase.REQUESTED, MessageType.SUPPLY_STARTED): (Phase.SUPPLYING, StepKind.STARTED),
    (Phase.REQUESTED, MessageType.TELEMETRY): (Phase.SUPPLYING, StepKind.PROGRESS),
    (Phase.REQUESTED, MessageType.TICKET): (Phase.FINISHED, StepKind.TICKET),
    (Phase.AUTHORIZED, MessageType.SUPPLY_STARTED): (Phase.SUPPLYING, StepKind.PLUGGED),
    (Phase.AUTHORIZED, MessageType.TELEMETRY): (Phase.SUPPLYING, StepKind.PROGRESS),
    (Phase.AUTHORIZED, MessageType.CHARGE_DENIED): (Phase.DENIED, StepKind.DENIED),
    (Phase.AUTHORIZED, MessageType.TICKET): (Phase.FINISHED, StepKind.TICKET),
    (Phase.SUPPLYING, MessageType.CHARGE_AUTHORIZED): (Phase.SUPPLYING, None),  # late, see above
    (Phase.SUPPLYING, MessageType.TELEMETRY): (Phase.SUPPLYING, StepKind.PROGRESS),
    (Phase.SUPPLYING, MessageType.CHARGE_DENIED): (Phase.DENIED, StepKind.DENIED),
    (Phase.SUPPLYING, MessageType.TICKET): (Phase.FINISHED, StepKind.TICKET),
}

_SESSION_PHASES = {"authorized": Phase.AUTHORIZED, "supplying": Phase.SUPPLYING}


class ChargeTracker:
    """Follows one charge at ``cp_id`` from the request (or a resumed session) to its end.

    Args:
        cp_id: the charge point asked for.
        session_id: known when following a charge Central already holds.
        phase: where the charge is; ``requested`` for a new request.
    """

    def __init__(
        self, cp_id: str, session_id: str | None = None, phase: Phase = Phase.REQUESTED
    ) -> None:
        self.cp_id = cp_id
        self.session_id = session_id
        self.phase = phase
        self.price: float | None = None
        self.kw = 0.0
        self.kwh = 0.0
        self.eur = 0.0
        self.supply_since: float | None = None
        self.ticket: Mapping[str, Any] | None = None
        self.reason = ""

    @classmethod
    def adopt(cls, session: Mapping[str, Any], now: float) -> ChargeTracker:
        """A tracker for a charge Central reports in ``status {session}``."""
        tracker = cls(str(session.get("cp_id", "")), str(session.get("session_id") or ""))
        tracker._resume(session, now)
        return tracker

    @property
    def done(self) -> bool:
        return self.phase in TERMINAL

    def elapsed(self, now: float) -> float:
        """Seconds since the supply started (as this process saw it)."""
        return 0.0 if self.supply_since is None else max(0.0, now - self.supply_since)

    def progress(self, now: float) -> Progress:
        return Progress(self.cp_id, self.kw, self.kwh, self.eur, self.elapsed(now))

    def feed(self, msg: Message, now: float) -> Step | None:
        """Take one message from Central; return what to show, or None."""
        body = msg.body
        if msg.type is MessageType.STATUS:
            steps = self.reconcile(body, now)
            return steps[-1] if steps else None
        if not self._concerns(body):
            if msg.type is MessageType.TICKET:
                return Step(StepKind.OTHER_TICKET, str(body.get("cp_id", "?")), body)
            return None
        move = _TRANSITIONS.get((self.phase, msg.type))
        if move is None:
            return None
        self.phase, kind = move
        self._absorb(msg.type, body, now)
        return None if kind is None else Step(kind, self.cp_id, body)

    def reconcile(self, status: Mapping[str, Any], now: float) -> list[Step]:
        """Bring the charge up to date from ``status {session, missed_tickets}``.

        Used after a reconnection, or when Central has been silent for a while: the
        charge may have ended (its ticket is among the missed ones), still be running,
        or be gone without a ticket.
        """
        steps: list[Step] = []
        for ticket in status.get("missed_tickets") or []:
            if not self.done and self._concerns(ticket):
                self.phase = Phase.FINISHED
                self._absorb(MessageType.TICKET, ticket, now)
                steps.append(Step(StepKind.TICKET, self.cp_id, ticket))
            else:
                steps.append(Step(StepKind.OTHER_TICKET, str(ticket.get("cp_id", "?")), ticket))
        if self.done:
            return steps
        session = status.get("session")
        if session and self._concerns(session):
            self._resume(session, now)
            steps.append(Step(StepKind.RESUMED, self.cp_id, session))
        else:
            if self.session_id is None:
                self.reason = "Central has no record of this request"
            elif self.phase is Phase.AUTHORIZED:
                self.reason = "the authorisation ended while the driver was away; nothing supplied"
            else:
                self.reason = "the charge ended but its ticket did not reach this driver"
            self.phase = Phase.LOST
            steps.append(Step(StepKind.LOST, self.cp_id, {"reason": self.reason}))
        return steps

    def give_up(self, reason: str) -> Outcome:
        return Outcome(self.cp_id, OutcomeKind.GAVE_UP, reason, self.kwh or None, None)

    def outcome(self) -> Outcome:
        """How the charge ended (call once ``done``)."""
        if self.phase is Phase.FINISHED and self.ticket is not None:
            return Outcome(
                self.cp_id,
                OutcomeKind.CHARGED,
                str(self.ticket.get("reason") or ""),
                _number(self.ticket.get("kwh")),
                _number(self.ticket.get("total_eur")),
                self.session_id,
            )
        kind = OutcomeKind.DENIED if self.phase is Phase.DENIED else OutcomeKind.LOST
        return Outcome(self.cp_id, kind, self.reason, None, None, self.session_id)

    # ---------------------------------------------------------------- helpers
    def _concerns(self, body: Mapping[str, Any]) -> bool:
        if body.get("cp_id") != self.cp_id:
            return False
        theirs = body.get("session_id")
        return self.session_id is None or theirs is None or theirs == self.session_id

    def _absorb(self, msg_type: MessageType, body: Mapping[str, Any], now: float) -> None:
        if body.get("session_id") and self.session_id is None:
            self.session_id = str(body["session_id"])
        if "price_eur_kwh" in body:
            self.price = _number(body["price_eur_kwh"])
        started = msg_type in (MessageType.SUPPLY_STARTED, MessageType.TELEMETRY)
        if started and self.supply_since is None:
            self.supply_since = now
        if msg_type is MessageType.TELEMETRY:
            self.kw = _number(body.get("kw")) or 0.0
            self.kwh = _number(body.get("kwh")) or 0.0
            self.eur = _number(body.get("eur")) or 0.0
        elif msg_type is MessageType.TICKET:
            self.ticket = body
            self.kwh = _number(body.get("kwh")) or 0.0
            self.eur = _number(body.get("total_eur")) or 0.0
            self.reason = str(body.get("reason") or "")
        elif msg_type is MessageType.CHARGE_DENIED:
            self.reason = str(body.get("reason") or "refused")

    def _resume(self, session: Mapping[str, Any], now: float) -> None:
        self.session_id = str(session.get("session_id") or self.session_id or "") or None
        phase = _SESSION_PHASES.get(str(session.get("status")), Phase.SUPPLYING)
        if phase is Phase.SUPPLYING and self.supply_since is None:
            self.supply_since = now
        # never step back: a SUPPLYING charge stays supplying
        if not (self.phase is Phase.SUPPLYING and phase is Phase.AUTHORIZED):
            self.phase = phase
        self.price = _number(session.get("price_eur_kwh")) or self.price
        self.kw = _number(session.get("kw")) or self.kw
        self.kwh = _number(session.get("kwh")) or self.kwh
        self.eur = _number(session.get("eur")) or self.eur


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None
