"""The audit log: append-only and hash-chained, so tampering is detectable.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the canonical
JSON of its own fields. Appenders lock the single ``audit_head`` row, so entries
written by several processes (Registry, Central) still form one chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db.models import AuditEntry, AuditHead

__all__ = ["GENESIS", "ChainReport", "append", "entry_hash", "verify_chain"]

GENESIS = "0" * 64


def entry_hash(
    prev_hash: str,
    *,
    ts: datetime,
    actor: str,
    source_ip: str | None,
    action: str,
    cp_id: str | None,
    params: str,
    event_id: str | None,
) -> str:
    body = json.dumps(
        {
            "ts": ts.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": actor,
            "source_ip": source_ip,
            "action": action,
            "cp_id": cp_id,
            "params": params,
            "event_id": event_id,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{prev_hash}{body}".encode()).hexdigest()


def append(
    session: Session,
    *,
    actor: str,
    action: str,
    params: Mapping[str, Any] | None = None,
    source_ip: str | None = None,
    cp_id: str | None = None,
    event_id: str | None = None,
    ts: datetime | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction (locks the chain head)."""
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    ts = (ts or datetime.now(UTC)).astimezone(UTC)
    params_text = json.dumps(dict(params or {}), sort_keys=True, separators=(",", ":"), default=str)
    digest = entry_hash(
        head.last_hash,
        ts=ts,
        actor=actor,
        source_ip=source_ip,
        action=action,
        cp_id=cp_id,
        params=params_text,
        event_id=event_id,
    )
    entry = AuditEntry(
        ts=ts,
        actor=actor,
        source_ip=source_ip,
        action=action,
        cp_id=cp_id,
        params=params_text,
        event_id=event_id,
        prev_hash=head.last_hash,
        hash=digest,
    )
    session.add(entry)
    session.flush()
    head.last_id = entry.id
    head.last_hash = digest
    return entry


@dataclass(frozen=True)
class ChainReport:
    """Result of :func:`verify_chain`: ``ok`` and, if not, the first entry that breaks it."""

    ok: bool
    checked: int
    first_bad_id: int | None = None
    reason: str = ""


def verify_chain(session: Session, batch: int = 5000) -> ChainReport:
    """Recompute every hash in id order; report the first entry that does not match."""
    prev = GENESIS
    checked = 0
    last_id = 0
    while True:
        rows = session.scalars(
            select(AuditEntry).where(AuditEntry.id > last_id).order_by(AuditEntry.id).limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            if row.prev_hash != prev:
                return ChainReport(False, checked, row.id, "link to previous entry broken")
            expected = entry_hash(
                prev,
                ts=row.ts,
                actor=row.actor,
                source_ip=row.source_ip,
                action=row.action,
                cp_id=row.cp_id,
                params=row.params,
                event_id=row.event_id,
            )
            if row.hash != expected:
                return ChainReport(False, checked, row.id, "entry altered")
            prev = row.hash
            checked += 1
            last_id = row.id
    head = session.get(AuditHead, 1)
    if head is not None and head.last_hash != prev:
        return ChainReport(False, checked, head.last_id, "entries removed from the end")
    return ChainReport(True, checked)
