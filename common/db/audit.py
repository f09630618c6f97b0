"""The audit log: append-only and hash-chained, so tampering is detectable.

Each entry's ``hash`` is SHA-256 over the previous entry's hash and the canonical
JSON of its own fields. Appenders lock the single ``audit_head`` row, so entries
written by several processes (Registry, Central) still form one chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from common.db.models import AuditEntry, AuditHead

__all__ = [
    "GENESIS",
    "ChainReport",
    "Entry",
    "append",
    "entry_hash",
    "params_json",
    "verify_chain",
]

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


@dataclass(frozen=True)
class Entry:
    """One action to append to the chain (``params`` as canonical JSON: :func:`params_json`)."""

    actor: str
    action: str
    params: str = "{}"
    source_ip: str | None = None
    cp_id: str | None = None
    event_id: str | None = None
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))


def params_json(params: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(params or {}), sort_keys=True, separators=(",", ":"), default=str)


def append(session: Session, entries: Sequence[Entry]) -> None:
    """Append ``entries`` in order inside the caller's transaction.

    The chain head is locked once, the hashes are computed here, and the rows go in
    one executemany INSERT; the head then points at the last of them.
    """
    if not entries:
        return
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    prev = head.last_hash
    rows = []
    for entry in entries:
        ts = entry.ts.astimezone(UTC)
        fields: dict[str, Any] = {
            "ts": ts,
            "actor": entry.actor,
            "source_ip": entry.source_ip,
            "action": entry.action,
            "cp_id": entry.cp_id,
            "params": entry.params,
            "event_id": entry.event_id,
        }
        digest = entry_hash(prev, **fields)
        rows.append({**fields, "prev_hash": prev, "hash": digest})
        prev = digest
    session.execute(insert(AuditEntry), rows)
    # Nobody else appends while we hold the head, so the newest id is our last entry's.
    head.last_id = session.scalar(select(func.max(AuditEntry.id))) or 0
    head.last_hash = prev


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
