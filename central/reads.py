"""Central's reads: what it loads at start, the registration refresh, verifier look-ups.

Plain functions of a SQLAlchemy ``Connection`` or ``Session``, run in the default thread
pool through :meth:`common.db.Database.read` / ``query`` (no write lock, no turn behind
the writer). They return plain values, never ORM objects, so nothing they hand to the
event loop can lazily load. Writes are :mod:`central.store`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from central.store import Ticket
from common.db.models import (
    ChargePoint,
    ChargingSession,
    Credential,
    Driver,
    SessionStatus,
    WeatherAlert,
)
from common.protocol.keys import ScryptParams, Verifier

__all__ = [
    "CPRow",
    "OpenSession",
    "history",
    "load_alerts",
    "load_cps",
    "load_open_sessions",
    "load_verifiers",
]


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


def _verifier_query(principal: type[ChargePoint] | type[Driver], active: Any) -> Any:
    cred = Credential
    return (
        select(
            cred.principal_id,
            cred.salt,
            cred.scrypt_n,
            cred.scrypt_r,
            cred.scrypt_p,
            cred.stored_key,
            cred.server_key,
        )
        .join(principal, principal.id == cred.principal_id)
        .where(
            cred.principal_kind == bindparam("kind"),
            cred.principal_id.in_(bindparam("ids", expanding=True)),
        )
        .where(active)
    )


# Built once: a login storm runs thousands of these, and building one costs more than
# running it.
_VERIFIERS = {
    "cp": _verifier_query(ChargePoint, ChargePoint.deregistered_at.is_(None)),
    "driver": _verifier_query(Driver, Driver.disabled_at.is_(None)),
}


def load_verifiers(
    conn: Connection | Session, kind: str, principal_ids: list[str]
) -> dict[str, Verifier]:
    """The verifiers of those of ``principal_ids`` that are active (a registered CP, an
    enabled driver); ``kind`` is ``cp`` or ``driver``."""
    rows = conn.execute(_VERIFIERS[kind], {"kind": kind, "ids": principal_ids})
    return {
        principal_id: Verifier(salt, ScryptParams(n, r, p), stored_key, server_key)
        for principal_id, salt, n, r, p, stored_key, server_key in rows
    }


def load_cps(conn: Connection | Session, since: datetime | None = None) -> list[CPRow]:
    """Every CP row (changed at or after ``since``), as plain columns: no ORM objects."""
    cp = ChargePoint
    query = select(
        cp.id, cp.location, cp.price_eur_kwh, cp.deregistered_at, cp.operator_stopped, cp.updated_at
    ).order_by(cp.id)
    if since is not None:
        query = query.where(cp.updated_at >= since)
    return [
        CPRow(cp_id, location, price, gone is None, stopped, updated)
        for cp_id, location, price, gone, stopped, updated in conn.execute(query)
    ]


def load_alerts(session: Session) -> list[str]:
    return list(session.scalars(select(WeatherAlert.location)))


def load_open_sessions(
    session: Session | Connection, cp_id: str | None = None
) -> list[OpenSession]:
    """Sessions authorised or supplying (of ``cp_id``, or of every CP), as plain values."""
    cs = ChargingSession
    query = select(
        cs.id,
        cs.cp_id,
        cs.driver_id,
        cs.status,
        cs.energy_kwh,
        cs.price_eur_kwh,
        cs.target_kwh,
        cs.started_at,
    ).where(cs.status.in_([SessionStatus.AUTHORIZED, SessionStatus.SUPPLYING]))
    if cp_id is not None:
        query = query.where(cs.cp_id == cp_id)
    return [OpenSession(*row) for row in session.execute(query)]


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
