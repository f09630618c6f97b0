"""Central's database work, off the event loop.

Writes go through one :class:`DbWriter` thread, in submission order, batched into
few transactions (one flush per batch; only if an item fails is the batch redone with
each item in its own savepoint). ``await writer.call(fn)``
returns once ``fn``'s transaction has committed, so a ticket is durable before it
is sent; ``writer.submit(fn)`` is fire-and-forget for progress and state events.
Reads run in the default thread pool. The functions below are the unit of work:
plain functions of a SQLAlchemy ``Session``, easy to test on a real database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from common.db import Database
from common.db.models import (
    ChargePoint,
    ChargingSession,
    Credential,
    Driver,
    SessionStatus,
    WeatherAlert,
    utcnow,
)
from common.events import Event, EventType, record
from common.protocol.keys import Verifier

__all__ = [
    "CPRow",
    "DbWriter",
    "OpenSession",
    "Ticket",
    "compute_total",
    "load_verifier",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
CENT = Decimal("0.01")
KWH = Decimal("0.001")


def compute_total(kwh: Decimal, price: Decimal) -> Decimal:
    return (kwh * price).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class CPRow:
    id: str
    location: str
    price: Decimal
    registered: bool
    operator_stopped: bool
    updated_at: datetime

    @classmethod
    def of(cls, cp: ChargePoint) -> CPRow:
        return cls(
            cp.id,
            cp.location,
            cp.price_eur_kwh,
            cp.registered,
            cp.operator_stopped,
            cp.updated_at,
        )


@dataclass(frozen=True)
class OpenSession:
    """A session that was running when Central last stopped."""

    id: str
    cp_id: str
    driver_id: str | None
    status: str
    energy_kwh: Decimal
    price: Decimal
    target_kwh: Decimal | None
    started_at: datetime | None


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


def load_verifier(session: Session, kind: str, principal_id: str) -> Verifier | None:
    cred = session.get(Credential, (kind, principal_id))
    if cred is None:
        return None
    if kind == "driver":
        driver = session.get(Driver, principal_id)
        if driver is None or driver.disabled_at is not None:
            return None
    else:
        cp = session.get(ChargePoint, principal_id)
        if cp is None or not cp.registered:
            return None
    return cred.verifier()


def load_cps(session: Session, since: datetime | None = None) -> list[CPRow]:
    query = select(ChargePoint).order_by(ChargePoint.id)
    if since is not None:
        query = query.where(ChargePoint.updated_at >= since)
    return [CPRow.of(cp) for cp in session.scalars(query)]


def load_alerts(session: Session) -> list[str]:
    return list(session.scalars(select(WeatherAlert.location)))


def load_open_sessions(session: Session) -> list[OpenSession]:
    rows = session.scalars(
        select(ChargingSession).where(
            ChargingSession.status.in_([SessionStatus.AUTHORIZED, SessionStatus.SUPPLYING])
        )
    )
    return [
        OpenSession(
            r.id,
            r.cp_id,
            r.driver_id,
            r.status,
            r.energy_kwh,
            r.price_eur_kwh,
            r.target_kwh,
            r.started_at,
        )
        for r in rows
    ]


def settle(
    session: Session, session_id: str, kwh: Decimal, reason: str, source: str
) -> tuple[Ticket, bool]:
    """End a session exactly once. Returns the ticket and whether this call settled it.

    The conditional UPDATE is the guard: of two racing settlements (a fault and the
    engine's own report after a restart) only one matches an open row.
    """
    row = session.get(ChargingSession, session_id, with_for_update=True)
    if row is None:
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


class DbWriter:
    """One thread that applies database work in order, a batch per transaction."""

    def __init__(
        self,
        db: Database,
        *,
        batch: int = 500,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._batch = batch
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[
            tuple[Callable[[Session], Any], concurrent.futures.Future[Any]] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout)

    def submit(self, fn: Callable[[Session], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fn, future))
        return future

    async def call(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in the writer; return its result once committed."""
        return await asyncio.wrap_future(self.submit(fn))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            items = [first]
            while len(items) < self._batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                items.append(item)
            self._apply(items)

    def _apply(
        self, items: list[tuple[Callable[[Session], Any], concurrent.futures.Future[Any]]]
    ) -> None:
        try:
            try:
                outcomes = self._transaction(items, isolated=False)
            except _ItemFailed:
                # Rolled back: redo the batch with each item in its own savepoint.
                outcomes = self._transaction(items, isolated=True)
        except Exception as exc:
            log.exception("database write failed", extra={"fields": {"items": len(items)}})
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        if self._on_commit is not None:
            self._on_commit()
        for (ok, value), (_, future) in zip(outcomes, items, strict=True):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _transaction(
        self,
        items: list[tuple[Callable[[Session], Any], concurrent.futures.Future[Any]]],
        *,
        isolated: bool,
    ) -> list[tuple[bool, Any]]:
        """Apply ``items`` in one transaction.

        Not ``isolated`` (the usual case): no savepoints, so the ORM flushes the whole
        batch at once (inserts grouped) instead of once per item with a SAVEPOINT and a
        RELEASE around it; the first failing item raises :class:`_ItemFailed` and rolls
        everything back. ``isolated``: each item in its own savepoint, a failing one is
        recorded as its outcome and must not sink the batch.
        """
        outcomes: list[tuple[bool, Any]] = []
        with self._db.transaction() as session:
            for fn, _ in items:
                if not isolated:
                    try:
                        outcomes.append((True, fn(session)))
                    except Exception as exc:
                        raise _ItemFailed from exc
                    continue
                try:
                    with session.begin_nested():
                        outcomes.append((True, fn(session)))
                except Exception as exc:  # one bad item must not sink the batch
                    outcomes.append((False, exc))
            if not isolated:
                try:
                    session.flush()  # an item's constraint violation surfaces here, not at commit
                except Exception as exc:
                    raise _ItemFailed from exc
        return outcomes


class _ItemFailed(Exception):
    """An item of an unisolated batch raised: the batch is rolled back and redone."""
