"""Fakes for the dashboard's unit tests: API_Central in memory, a scripted event consumer."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from common.events import Event, EventType
from web_ui.errors import UpstreamRejected, UpstreamUnavailable

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def cp(cp_id: str, state: str = "ACTIVATED", **extra: Any) -> dict[str, Any]:
    """A charge point as ``GET /api/chargepoints`` shows it."""
    return {
        "id": cp_id,
        "location": extra.pop("location", "Madrid"),
        "price_eur_kwh": extra.pop("price_eur_kwh", 0.4),
        "state": state,
        "registered": True,
        "monitor_connected": state != "DISCONNECTED",
        "engine_connected": state != "DISCONNECTED",
        "engine_ok": state != "BROKEN",
        "stopped_by": [],
        "key_status": "active",
        "fault": None,
        "session": None,
        **extra,
    }


def event(kind: EventType, *, at: float = 1.0, **fields: Any) -> Event:
    """An event stamped ``at`` seconds after T0."""
    data = fields.pop("data", {})
    return Event(kind, "central", data, ts=T0 + timedelta(seconds=at), **fields)


class FakeCentral:
    """API_Central in memory; ``down = True`` makes every call fail like a dead server."""

    def __init__(self, cps: list[dict[str, Any]] | None = None) -> None:
        self.cps = cps if cps is not None else [cp("CP1"), cp("CP2", "DISCONNECTED")]
        self.driver_rows: list[dict[str, Any]] = [{"id": "D1", "connected": True}]
        self.weather_view: dict[str, Any] = {"alerts": [], "readings": {}}
        self.ended: list[dict[str, Any]] = []
        self.audit_entries: list[dict[str, Any]] = []
        self.stats_view: dict[str, Any] = {
            "by_state": {},
            "active_sessions": 0,
            "sessions_finished": 0,
            "energy_kwh": 0.0,
            "revenue_eur": 0.0,
            "per_cp": [],
            "per_day": [],
        }
        self.calls: list[tuple[str, Any]] = []
        self.down = False
        self.refuse: UpstreamRejected | None = None
        self.can_write = True

    def _check(self, name: str, arg: Any = None) -> None:
        self.calls.append((name, arg))
        if self.down:
            raise UpstreamUnavailable("Central", "connection refused or lost")

    def health(self) -> dict[str, Any]:
        self._check("health")
        return {"status": "ok"}

    def chargepoints(self) -> list[dict[str, Any]]:
        self._check("chargepoints")
        return [dict(c) for c in self.cps]

    def drivers(self) -> list[dict[str, Any]]:
        self._check("drivers")
        return list(self.driver_rows)

    def weather(self) -> dict[str, Any]:
        self._check("weather")
        return dict(self.weather_view)

    def sessions(self, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        self._check("sessions", filters)
        return list(self.ended)

    def stats(self) -> dict[str, Any]:
        self._check("stats")
        return dict(self.stats_view)

    def audit(self, filters: dict[str, Any] | None = None) -> dict[str, Any]:
        self._check("audit", filters)
        checked = len(self.audit_entries)
        chain = {
            "ok": True,
            "checked": checked,
            "verified_through": checked,
            "first_bad_id": None,
            "reason": None,
        }
        return {"entries": list(self.audit_entries), "total": checked, "chain": chain}

    def audit_csv(self, filters: dict[str, Any] | None = None) -> bytes:
        self._check("audit_csv", filters)
        return b"id,ts,actor\n1,2026-11-21T10:00:00+00:00,operator\n"

    def _write(self, name: str, arg: Any) -> dict[str, Any]:
        self._check(name, arg)
        if self.refuse is not None:
            raise self.refuse
        return {}

    def stop(self, cp_id: str | None) -> dict[str, Any]:
        return self._write("stop", cp_id)

    def resume(self, cp_id: str | None) -> dict[str, Any]:
        return self._write("resume", cp_id)

    def revoke_key(self, cp_id: str) -> dict[str, Any]:
        return self._write("revoke_key", cp_id)

    def set_price(self, cp_id: str, price: str) -> dict[str, Any]:
        return self._write("set_price", (cp_id, price))

    def clear_alert(self, location: str) -> dict[str, Any]:
        return self._write("clear_alert", location)


class FakeConsumer:
    """Hands out the events given to :meth:`push` (from any thread), then nothing."""

    def __init__(self) -> None:
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self.assigned_partitions = 3
        self.closed = False

    def push(self, *events: Event) -> None:
        with self._lock:
            self._pending.extend(events)

    def poll(self, timeout: float = 1.0, max_events: int = 500) -> list[Event]:
        with self._lock:
            batch, self._pending = self._pending[:max_events], self._pending[max_events:]
        if not batch:
            time.sleep(min(timeout, 0.01))
        return batch

    def close(self) -> None:
        self.closed = True
