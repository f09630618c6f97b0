"""Verifying the audit chain, incrementally, and signed checkpoints of its head.

A full verification recomputes every entry's HMAC (about 24 µs each: 24 s for a
million entries), so :class:`ChainVerifier` remembers the entry through which the
chain is known good and afterwards checks only what was appended since. It starts
from the newest stored :class:`Checkpoint` (one is signed only over a chain verified
up to it), so a restart does not redo the whole chain either; ``full=True`` does.

The keyed chain stops rewriting, not truncation: deleting the newest entries and
moving the head back leaves a shorter chain that verifies. A checkpoint names an
entry and its hash, signed with the audit key; Central publishes each one to Kafka,
outside the database. A chain that no longer contains the newest checkpoint known
(from Kafka, from this process's memory, or stored) has lost entries.

Verification reads only (``Database.read``): it never takes the writer's turn.
"""

from __future__ import annotations

import hmac
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from common.db.audit import GENESIS, canonical_ts, entry_hash
from common.db.auditkeys import AuditKeys
from common.db.models import AuditCheckpoint, AuditEntry, AuditHead

__all__ = [
    "ChainReport",
    "ChainVerifier",
    "Checkpoint",
    "Mark",
    "newest_stored",
    "verify_chain",
    "verify_from",
]

Mark = tuple[int, str]  # (entry id, its hash): the chain is known good up to here
_START: Mark = (0, GENESIS)


@dataclass(frozen=True)
class ChainReport:
    """``ok``, how many entries this check read, and the first entry that breaks the chain."""

    ok: bool
    checked: int
    verified_through: int = 0
    first_bad_id: int | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "verified_through": self.verified_through,
            "first_bad_id": self.first_bad_id,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Checkpoint:
    """A signed "entry ``entry_id`` of the chain has ``hash``"."""

    entry_id: int
    hash: str
    ts: datetime
    key_id: str
    signature: str

    @classmethod
    def make(cls, keys: AuditKeys, mark: Mark, ts: datetime | None = None) -> Checkpoint:
        ts = (ts or datetime.now(UTC)).astimezone(UTC)
        signature = keys.sign(keys.current, _message(mark[0], mark[1], ts, keys.current))
        return cls(mark[0], mark[1], ts, keys.current, signature)

    def valid(self, keys: AuditKeys) -> bool:
        """Signed by one of ``keys`` (an unknown key id is not valid)."""
        if self.key_id not in keys.keys:
            return False
        expected = keys.sign(self.key_id, _message(self.entry_id, self.hash, self.ts, self.key_id))
        return hmac.compare_digest(expected, self.signature)

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "hash": self.hash,
            "ts": canonical_ts(self.ts),
            "key_id": self.key_id,
            "signature": self.signature,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        """Raises ValueError (or KeyError, TypeError) on a malformed checkpoint."""
        ts = datetime.fromisoformat(str(data["ts"]))
        if ts.tzinfo is None:
            raise ValueError("checkpoint time without a time zone")
        return cls(
            int(data["entry_id"]),
            str(data["hash"]),
            ts,
            str(data["key_id"]),
            str(data["signature"]),
        )

    @classmethod
    def from_row(cls, row: AuditCheckpoint) -> Checkpoint:
        return cls(row.entry_id, row.hash, row.ts, row.key_id, row.signature)


def _message(entry_id: int, digest: str, ts: datetime, key_id: str) -> bytes:
    # Its own domain, so a checkpoint signature can never pass for an entry's hash.
    body = {"entry_id": entry_id, "hash": digest, "ts": canonical_ts(ts), "key_id": key_id}
    return b"evcharging audit checkpoint\x00" + json.dumps(body, sort_keys=True).encode()


def verify_chain(session: Session, keys: AuditKeys | None) -> ChainReport:
    """Verify the whole chain (the cost grows with it: prefer :class:`ChainVerifier`)."""
    return verify_from(session, keys, _START)[0]


def verify_from(
    session: Session, keys: AuditKeys | None, start: Mark, batch: int = 5000
) -> tuple[ChainReport, Mark]:
    """Verify the entries after ``start`` up to the head; return the report and new mark.

    Keys are listed newest first, and the chain may only move to newer ones: an entry
    signed with a retired key after one signed with its successor is refused, so a
    retired key that leaked cannot append to the chain.
    """
    head = session.get(AuditHead, 1)
    last_id = head.last_id if head is not None else 0
    prev_id, prev = start
    ranks = {key_id: rank for rank, key_id in enumerate(keys.keys)} if keys else {}
    newest = len(ranks)  # rank of the newest key used so far (lower is newer)
    if prev_id:
        newest = ranks.get(
            session.scalar(select(AuditEntry.key_id).where(AuditEntry.id == prev_id)) or "",
            newest,
        )
    checked = 0
    while True:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.id > prev_id, AuditEntry.id <= last_id)
            .order_by(AuditEntry.id)
            .limit(batch)
        ).all()
        if not rows:
            break
        for row in rows:
            bad = _check(row, prev, keys)
            rank = ranks.get(row.key_id or "", newest)
            if not bad and rank > newest:
                bad = f"signed with retired key {row.key_id} after a newer one"
            if bad:
                return ChainReport(False, checked, prev_id, row.id, bad), (prev_id, prev)
            newest = rank
            prev_id, prev = row.id, row.hash
            checked += 1
    if head is not None and (head.last_id, head.last_hash) != (prev_id, prev):
        report = ChainReport(False, checked, prev_id, head.last_id, "entries removed from the end")
        return report, (prev_id, prev)
    return ChainReport(True, checked, prev_id), (prev_id, prev)


def _check(row: AuditEntry, prev: str, keys: AuditKeys | None) -> str:
    """Why ``row`` breaks the chain, or "" if it does not."""
    if row.prev_hash != prev:
        return "link to previous entry broken"
    if row.key_id is None:
        # Written before migration 0002 or by someone without a key: nothing outside the
        # database vouches for it, so it cannot be told from a forgery.
        return "unkeyed entry"
    if keys is None or row.key_id not in keys.keys:
        return f"signed with unknown key {row.key_id} (list it in EV_AUDIT_KEY)"
    expected = entry_hash(
        prev,
        keys,
        key_id=row.key_id,
        ts=row.ts,
        actor=row.actor,
        source_ip=row.source_ip,
        action=row.action,
        cp_id=row.cp_id,
        params=row.params,
        event_id=row.event_id,
    )
    return "" if hmac.compare_digest(row.hash, expected) else "entry altered"


def _reaches(session: Session, checkpoint: Checkpoint) -> bool:
    return _reaches_mark(session, (checkpoint.entry_id, checkpoint.hash))


def _reaches_mark(session: Session, mark: Mark) -> bool:
    """The chain still holds entry ``mark[0]`` with hash ``mark[1]``."""
    found = session.scalar(select(AuditEntry.hash).where(AuditEntry.id == mark[0]))
    return found is not None and hmac.compare_digest(found, mark[1])


def newest_stored(session: Session, keys: AuditKeys) -> Checkpoint | None:
    """The newest checkpoint in the database that carries a valid signature."""
    rows = session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.entry_id.desc()).limit(20)
    )
    for row in rows:
        checkpoint = Checkpoint.from_row(row)
        if checkpoint.valid(keys):
            return checkpoint
    return None


class ChainVerifier:
    """Remembers how far the chain is verified and the newest checkpoint known.

    Thread-safe; checks run one at a time, so a burst of requests costs one check.
    """

    def __init__(self, keys: AuditKeys) -> None:
        self.keys = keys
        self._lock = threading.Lock()
        self._mark: Mark | None = None
        self._known: Checkpoint | None = None  # newest checkpoint published (or signed here)

    @property
    def mark(self) -> Mark | None:
        return self._mark

    def saw(self, checkpoint: Checkpoint) -> bool:
        """Remember a published checkpoint if it is valid and newer; True if it was valid."""
        if not checkpoint.valid(self.keys):
            return False
        with self._lock:
            if self._known is None or checkpoint.entry_id > self._known.entry_id:
                self._known = checkpoint
        return True

    def check(self, session: Session, *, full: bool = False) -> ChainReport:
        """Verify what was appended since the last check (everything if ``full``)."""
        with self._lock:
            start = _START if full else self._mark
            stored = newest_stored(session, self.keys)
            if start is None:
                start = _START
                if stored is not None and _reaches(session, stored):
                    start = (stored.entry_id, stored.hash)
            elif start != _START and not _reaches_mark(session, start):
                return ChainReport(
                    False,
                    0,
                    start[0],
                    start[0],
                    f"entry {start[0]} is missing or changed since it was verified: "
                    "entries were removed or rewritten",
                )
            report, mark = verify_from(session, self.keys, start)
            if not report.ok:
                return report
            # Each signed checkpoint still in the chain (once, and not the start: checked).
            known = dict.fromkeys(c for c in (self._known, stored) if c is not None)
            for checkpoint in known:
                at = (checkpoint.entry_id, checkpoint.hash)
                if at != start and not _reaches_mark(session, at):
                    return ChainReport(
                        False,
                        report.checked,
                        mark[0],
                        checkpoint.entry_id,
                        f"entry {checkpoint.entry_id} of the checkpoint signed at "
                        f"{canonical_ts(checkpoint.ts)} is missing or changed: entries were "
                        "removed or rewritten",
                    )
            self._mark = mark
            return report
