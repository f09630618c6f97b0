"""Crash-safe metering: the supply in progress and unsettled reports, on disk.

The journal is one small JSON file rewritten whole on every change: written to a
temporary file, fsync'd, renamed over the old one, and the directory fsync'd. A
SIGKILL at any instant leaves either the old or the new version, never a torn one.

    {"version": 1,
     "active": {"session_id", "driver_id", "price_eur_kwh", "target_kwh", "kwh"} | null,
     "unsettled": [{"session_id", "driver_id", "price_eur_kwh", "kwh", "reason"}, ...]}

``active`` is a supply in progress; ``unsettled`` are supplies that ended and whose
``supply_ended`` report Central has not yet answered with a ticket. A report leaves
the journal only when its ticket arrives.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cp_engine.errors import JournalError

__all__ = ["ActiveSupply", "Journal", "JournalState", "SupplyReport"]

VERSION = 1
RESTART_REASON = "engine_restart"


@dataclass(frozen=True)
class ActiveSupply:
    session_id: str
    driver_id: str | None
    price_eur_kwh: float
    target_kwh: float | None
    kwh: float = 0.0


@dataclass(frozen=True)
class SupplyReport:
    """A finished supply, as reported to Central in ``supply_ended``."""

    session_id: str
    driver_id: str | None
    price_eur_kwh: float
    kwh: float
    reason: str

    def body(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "kwh": self.kwh, "reason": self.reason}


@dataclass(frozen=True)
class JournalState:
    """What the journal holds; every change returns a new state (no I/O here)."""

    active: ActiveSupply | None = None
    unsettled: tuple[SupplyReport, ...] = ()

    def start(self, supply: ActiveSupply) -> JournalState:
        return replace(self, active=supply)

    def metered(self, kwh: float) -> JournalState:
        if self.active is None:
            return self
        return replace(self, active=replace(self.active, kwh=kwh))

    def end(self, reason: str) -> tuple[JournalState, SupplyReport | None]:
        """Move the active supply to the unsettled reports."""
        a = self.active
        if a is None:
            return self, None
        report = SupplyReport(a.session_id, a.driver_id, a.price_eur_kwh, a.kwh, reason)
        others = tuple(r for r in self.unsettled if r.session_id != a.session_id)
        return JournalState(None, (*others, report)), report

    def discard(self) -> JournalState:
        """Forget the active supply without a report (Central refused to start it)."""
        return replace(self, active=None)

    def settle(self, session_id: str) -> tuple[JournalState, SupplyReport | None]:
        """Forget the report of ``session_id`` (its ticket arrived)."""
        found = next((r for r in self.unsettled if r.session_id == session_id), None)
        if found is None:
            return self, None
        rest = tuple(r for r in self.unsettled if r.session_id != session_id)
        return replace(self, unsettled=rest), found

    def recovered(self) -> tuple[JournalState, SupplyReport | None]:
        """After a restart a supply cannot still be running: end it where the meter was."""
        return self.end(RESTART_REASON)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "active": asdict(self.active) if self.active else None,
            "unsettled": [asdict(r) for r in self.unsettled],
        }

    @classmethod
    def from_json(cls, data: Any) -> JournalState:
        """Raises ValueError, TypeError or KeyError on anything malformed."""
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError("not a version 1 journal")
        active = data["active"]
        return cls(
            ActiveSupply(**active) if active is not None else None,
            tuple(SupplyReport(**r) for r in data["unsettled"]),
        )


class Journal:
    """The journal file: :meth:`load` at start, :meth:`save` after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[JournalState, str | None]:
        """Read the journal; returns the state and a warning to show, if any.

        A missing file is an empty journal. An unreadable one is moved aside (kept for
        an operator to inspect) and the engine starts empty, saying so.

        Raises:
            JournalError: the file exists but cannot be read at all (permissions).
        """
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return JournalState(), None
        except OSError as exc:
            raise JournalError(f"cannot read journal {self.path}: {exc.strerror}") from None
        try:
            return JournalState.from_json(json.loads(raw)), None
        except (ValueError, TypeError, KeyError):
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                self.path.rename(aside)
            return JournalState(), f"journal {self.path} was unreadable; kept as {aside.name}"

    def save(self, state: JournalState) -> None:
        """Replace the journal atomically and durably.

        Raises:
            JournalError: the file cannot be written.
        """
        data = json.dumps(state.to_json(), separators=(",", ":")).encode("utf-8")
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            raise JournalError(f"cannot write journal {self.path}: {exc.strerror}") from None


def _fsync_dir(path: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
