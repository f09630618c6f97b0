"""Central's units of database work: plain functions of a SQLAlchemy ``Session``.

Writes run in the :class:`~central.writer.DbWriter` thread, in submission order; reads
in the default thread pool. Each function is one step of a transaction the caller
owns, easy to test on a real database. Every state change is written with its event
(the outbox), so nothing reaches Kafka that is not in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session

from central.states import CPState
from common.db import batch
from common.db.models import (
    ChargePoint,
    ChargingSession,
    SessionStatus,
    WeatherAlert,
    utcnow,
)
from common.events import Event, EventType, record

__all__ = [
    "Ticket",
    "compute_total",
    "mark_delivered",
    "pending_tickets",
    "persist_alert",
    "persist_authorized",
    "persist_cancelled",
    "persist_operator_stop",
    "persist_price",
    "persist_progress",
    "persist_started",
    "persist_state",
    "settle",
]

SOURCE = "central"
CENT = Decimal("0.01")
KWH = Decimal("0.001")


def compute_total(kwh: Decimal, price: Decimal) -> Decimal:
    return (kwh * price).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Ticket:
    """The receipt of one finished charge."""

    session_id: str
    cp_id: str
    driver_id: str | None
    started_at: datetime | None
    ended_at: datetime
    energy_kwh: Decimal
    price_eur_kwh: Decimal
    total_eur: Decimal
    end_reason: str

    @classmethod
    def of(cls, row: ChargingSession) -> Ticket:
        assert row.ended_at is not None
        return cls(
            row.id,
            row.cp_id,
            row.driver_id,
            row.started_at,
            row.ended_at,
            row.energy_kwh,
            row.price_eur_kwh,
            row.total_eur,
            row.end_reason or "",
        )

    def to_body(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "cp_id": self.cp_id,
            "driver_id": self.driver_id,
            "start": self.started_at.isoformat() if self.started_at else None,
            "end": self.ended_at.isoformat(),
            "kwh": float(self.energy_kwh.quantize(KWH)),
            "price_eur_kwh": float(self.price_eur_kwh),
            "total_eur": float(self.total_eur),
            "reason": self.end_reason,
        }


def settle(
    session: Session,
    session_id: str,
    kwh: Decimal,
    reason: str,
    source: str = SOURCE,
    cp_id: str | None = None,
) -> tuple[Ticket, bool]:
    """End a session exactly once. Returns the ticket and whether this call settled it.

    The conditional UPDATE is the guard: of two racing settlements (a fault and the
    engine's own report after a restart) only one matches an open row. The energy
    billed never goes below what was recorded.

    Args:
        cp_id: when an engine asks, its own CP: another CP's session is unknown to it.

    Raises:
        LookupError: no such session (of ``cp_id``).
    """
    batch.flush(session, _write_progress)  # the energy recorded so far counts
    row = session.get(ChargingSession, session_id, with_for_update=True)
    if row is None or (cp_id is not None and row.cp_id != cp_id):
        raise LookupError(session_id)
    if row.status in (SessionStatus.ENDED, SessionStatus.CANCELLED):
        # Already settled, or never started (a cancelled authorisation is not billed).
        return Ticket.of(row), False
    now = utcnow()
    kwh = max(Decimal(kwh), row.energy_kwh).quantize(Decimal("0.0001"))
    total = compute_total(kwh, row.price_eur_kwh)
    result = session.execute(
        update(ChargingSession)
        .where(
            ChargingSession.id == session_id,
            ChargingSession.status.in_([SessionStatus.AUTHORIZED, SessionStatus.SUPPLYING]),
        )
        .values(
            status=SessionStatus.ENDED,
            ended_at=now,
            energy_kwh=kwh,
            total_eur=total,
            end_reason=reason,
            started_at=row.started_at or now,
        )
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(row)
        return Ticket.of(row), False
    session.refresh(row)
    ticket = Ticket.of(row)
    record(
        session,
        Event(
            EventType.SESSION_ENDED,
            source,
            ticket.to_body(),
            cp_id=row.cp_id,
            driver_id=row.driver_id,
            session_id=row.id,
        ),
    )
    return ticket, True


def persist_state(session: Session, cp_id: str, old: CPState, new: CPState, reason: str) -> None:
    """A CP's state change, and its event; in a writer batch, one executemany for all."""
    batch.later(session, _write_states, (cp_id, str(new)))
    record(
        session,
        Event(
            EventType.CP_STATE_CHANGED,
            SOURCE,
            {"from": str(old), "to": str(new), "reason": reason},
            cp_id=cp_id,
        ),
    )


_CPS = cast(Table, ChargePoint.__table__)
# updated_at stays: it says when the registration changed (what a refresh reads), and
# Central's own state changes would make every refresh re-read the whole fleet.
_STATE = (
    update(_CPS)
    .where(_CPS.c.id == bindparam("b_id"))
    .values(last_state=bindparam("b_value"), updated_at=_CPS.c.updated_at)
)


def _write_states(session: Session, items: list[tuple[str, str]]) -> None:
    _write_latest(session, _STATE, items)  # a CP's last change in the batch is its state


def persist_authorized(
    session: Session,
    session_id: str,
    cp_id: str,
    driver_id: str | None,
    price: Decimal,
    target_kwh: Decimal | None,
    source_ip: str | None,
) -> None:
    session.add(
        ChargingSession(
            id=session_id,
            cp_id=cp_id,
            driver_id=driver_id,
            status=SessionStatus.AUTHORIZED,
            price_eur_kwh=price,
            target_kwh=target_kwh,
        )
    )
    record(
        session,
        Event(
            EventType.SESSION_AUTHORIZED,
            SOURCE,
            {
                "price_eur_kwh": float(price),
                "target_kwh": float(target_kwh) if target_kwh else None,
            },
            cp_id=cp_id,
            driver_id=driver_id,
            session_id=session_id,
            source_ip=source_ip,
        ),
    )


def persist_cancelled(session: Session, session_id: str, reason: str) -> None:
    session.execute(
        update(ChargingSession)
        .where(ChargingSession.id == session_id, ChargingSession.status == SessionStatus.AUTHORIZED)
        .values(status=SessionStatus.CANCELLED, ended_at=utcnow(), end_reason=reason[:32])
    )


def persist_started(session: Session, session_id: str, cp_id: str) -> None:
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


def persist_progress(session: Session, progress: dict[str, Any]) -> None:
    """A telemetry: the session's energy so far, and its event.

    In a writer batch the UPDATEs wait for the batch's end and go as one executemany,
    one row per session (the latest energy wins: it only grows).
    """
    item = (progress["session_id"], Decimal(str(progress["kwh"])))
    batch.later(session, _write_progress, item)
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


_SESSIONS = cast(Table, ChargingSession.__table__)
_PROGRESS = (  # Core, not the ORM: one executemany for the whole batch
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("b_id"), _SESSIONS.c.status == SessionStatus.SUPPLYING)
    .values(energy_kwh=bindparam("b_value"))
)


def _write_progress(session: Session, items: list[tuple[str, Decimal]]) -> None:
    _write_latest(session, _PROGRESS, items)  # the latest energy wins: it only grows


def _write_latest(session: Session, statement: Any, items: list[tuple[str, Any]]) -> None:
    """One executemany of ``statement`` (``b_id``, ``b_value``): each id's last value."""
    session.execute(
        statement, [{"b_id": key, "b_value": value} for key, value in dict(items).items()]
    )


def mark_delivered(session: Session, session_ids: list[str]) -> None:
    session.execute(
        update(ChargingSession)
        .where(ChargingSession.id.in_(session_ids))
        .values(ticket_delivered_at=utcnow())
    )


def persist_operator_stop(session: Session, cp_ids: list[str], stopped: bool) -> None:
    session.execute(
        update(ChargePoint).where(ChargePoint.id.in_(cp_ids)).values(operator_stopped=stopped)
    )


def persist_price(session: Session, cp_id: str, price: Decimal) -> None:
    session.execute(update(ChargePoint).where(ChargePoint.id == cp_id).values(price_eur_kwh=price))


def persist_alert(
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
