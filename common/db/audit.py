"""The audit log: append-only and chained under a key, so tampering is detectable.

Each entry's ``hash`` is HMAC-SHA256, under the key named by its ``key_id``, over the
previous entry's hash and the canonical JSON of its own fields (``key_id`` included).
Without the key nobody can recompute the chain after an edit. The keys come from
outside the database (:mod:`common.db.auditkeys`) and reach :func:`append` through the
session (``open_database(url, audit_keys=...)``); verifying is :mod:`common.db.chain`.

Appenders lock the single ``audit_head`` row, so entries written by several processes
(Registry, Central) still form one chain.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from common.db.auditkeys import AuditKeys
from common.db.engine import KEYS_INFO
from common.db.models import AuditEntry, AuditHead
from common.errors import ConfigError

__all__ = [
    "GENESIS",
    "KEYS_INFO",
    "Entry",
    "append",
    "canonical_ts",
    "entry_hash",
    "params_json",
    "session_keys",
]

GENESIS = "0" * 64


def session_keys(session: Session) -> AuditKeys:
    """The audit keys this session's database was opened with.

    Raises:
        ConfigError: the database was opened without them (a bug in the service's set-up:
            an unkeyed entry would break the chain, so none is written).
    """
    keys: AuditKeys | None = session.info.get(KEYS_INFO)
    if keys is None:
        raise ConfigError("EV_AUDIT_KEY", "this service writes audit entries but has no audit key")
    return keys


def canonical_ts(ts: datetime) -> str:
    """A time stamp as the chain signs it: UTC, ISO 8601, microseconds."""
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    keys: AuditKeys,
    *,
    key_id: str,
    ts: datetime,
    actor: str,
    source_ip: str | None,
    action: str,
    cp_id: str | None,
    params: str,
    event_id: str | None,
) -> str:
    """HMAC-SHA256 under ``key_id`` of the previous hash and the entry's canonical JSON.

    Raises:
        KeyError: ``key_id`` is not one of ``keys``.
    """
    body = json.dumps(
        {
            "ts": canonical_ts(ts),
            "actor": actor,
            "source_ip": source_ip,
            "action": action,
            "cp_id": cp_id,
            "params": params,
            "event_id": event_id,
            "key_id": key_id,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return keys.sign(key_id, f"{prev_hash}{body}".encode())


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
    keys = session_keys(session)
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
        digest = entry_hash(prev, keys, key_id=keys.current, **fields)
        rows.append({**fields, "key_id": keys.current, "prev_hash": prev, "hash": digest})
        prev = digest
    session.execute(insert(AuditEntry), rows)
    # Nobody else appends while we hold the head, so the newest id is our last entry's.
    head.last_id = session.scalar(select(func.max(AuditEntry.id))) or 0
    head.last_hash = prev
