"""Read-only database queries behind API_Central: sessions, drivers, stats, audit."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from common.db.models import AuditEntry, ChargingSession, Driver, SessionStatus

__all__ = ["AuditFilter", "audit_csv", "audit_entries", "drivers", "sessions", "stats"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def session_dict(row: ChargingSession) -> dict[str, Any]:
    return {
        "session_id": row.id,
        "cp_id": row.cp_id,
        "driver_id": row.driver_id,
        "status": row.status,
        "requested_at": _iso(row.requested_at),
        "start": _iso(row.started_at),
        "end": _iso(row.ended_at),
        "kwh": float(row.energy_kwh),
        "price_eur_kwh": float(row.price_eur_kwh),
        "total_eur": float(row.total_eur),
        "reason": row.end_reason,
    }


def sessions(
    session: Session,
    *,
    status: str | None = None,
    cp_id: str | None = None,
    driver_id: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    query = select(ChargingSession).order_by(ChargingSession.requested_at.desc()).limit(limit)
    if status:
        query = query.where(ChargingSession.status == status)
    if cp_id:
        query = query.where(ChargingSession.cp_id == cp_id)
    if driver_id:
        query = query.where(ChargingSession.driver_id == driver_id)
    return [session_dict(r) for r in session.scalars(query)]


def get_session(session: Session, session_id: str) -> dict[str, Any] | None:
    row = session.get(ChargingSession, session_id)
    return session_dict(row) if row else None


def drivers(session: Session) -> list[dict[str, Any]]:
    return [
        {"id": d.id, "created_at": _iso(d.created_at), "disabled": d.disabled_at is not None}
        for d in session.scalars(select(Driver).order_by(Driver.id))
    ]


def stats(session: Session) -> dict[str, Any]:
    """Energy and revenue of finished sessions: overall, per CP and per day (UTC)."""
    rows = session.execute(
        select(
            ChargingSession.cp_id,
            ChargingSession.ended_at,
            ChargingSession.energy_kwh,
            ChargingSession.total_eur,
        ).where(ChargingSession.status == SessionStatus.ENDED)
    ).all()
    per_cp: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
    per_day: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0), Decimal(0)])
    total_kwh = total_eur = Decimal(0)
    for cp_id, ended_at, kwh, eur in rows:
        day = ended_at.date().isoformat() if ended_at else "unknown"
        for bucket in (per_cp[cp_id], per_day[day]):
            bucket[0] += 1
            bucket[1] += kwh
            bucket[2] += eur
        total_kwh += kwh
        total_eur += eur

    def table(data: dict[str, list[Decimal]], key: str) -> list[dict[str, Any]]:
        return [
            {key: k, "sessions": int(v[0]), "kwh": float(round(v[1], 3)), "eur": float(v[2])}
            for k, v in sorted(data.items())
        ]

    return {
        "sessions_finished": len(rows),
        "energy_kwh": float(round(total_kwh, 3)),
        "revenue_eur": float(total_eur),
        "per_cp": table(per_cp, "cp_id"),
        "per_day": table(per_day, "day"),
    }


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None
    cp_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 500


def _audit_query(f: AuditFilter) -> Any:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(f.limit)
    if f.actor:
        query = query.where(AuditEntry.actor == f.actor)
    if f.action:
        query = query.where(AuditEntry.action.like(f"{f.action}%"))
    if f.cp_id:
        query = query.where(AuditEntry.cp_id == f.cp_id)
    if f.since:
        query = query.where(AuditEntry.ts >= f.since)
    if f.until:
        query = query.where(AuditEntry.ts <= f.until)
    return query


def _entry(row: AuditEntry) -> dict[str, Any]:
    return {
        "id": row.id,
        "ts": _iso(row.ts),
        "actor": row.actor,
        "source_ip": row.source_ip,
        "action": row.action,
        "cp_id": row.cp_id,
        "params": json.loads(row.params or "{}"),
        "hash": row.hash,
    }


def audit_entries(session: Session, f: AuditFilter) -> dict[str, Any]:
    """The matching entries and the log's size (the chain check is the caller's)."""
    total = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    return {"entries": [_entry(r) for r in session.scalars(_audit_query(f))], "total": total}


def audit_csv(session: Session, f: AuditFilter) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "ts", "actor", "source_ip", "action", "cp_id", "params", "hash"])
    for row in session.scalars(_audit_query(f)):
        writer.writerow(
            [
                row.id,
                _iso(row.ts),
                row.actor,
                row.source_ip or "",
                row.action,
                row.cp_id or "",
                row.params,
                row.hash,
            ]
        )
    return out.getvalue()
