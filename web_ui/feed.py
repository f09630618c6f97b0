"""The board's "recent errors and alerts": which events are notable and how each reads.

Pure: :func:`feed_item` reads an event from the topic, :func:`feed_item_from_audit` an entry
of ``GET /api/audit``; the same fact read both ways has the same :attr:`FeedItem.key`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.events import Event, EventType

__all__ = ["FeedItem", "feed_item", "feed_item_from_audit"]

_ERRORS = {
    EventType.ERROR,
    EventType.CP_AUTH_FAILED,
    EventType.DRIVER_AUTH_FAILED,
    EventType.REGISTRY_VERIFY_FAILED,
    EventType.REGISTRY_LOCKOUT,
}
_WARNINGS = {
    EventType.WEATHER_ALERT,
    EventType.CP_KEY_REVOKED,
    EventType.SESSION_DENIED,
    EventType.CP_DEREGISTERED,
}
_INFO = {EventType.WEATHER_CLEARED, EventType.OPERATOR_COMMAND, EventType.CP_REGISTERED}


@dataclass(frozen=True)
class FeedItem:
    """One line of "recent errors and alerts"."""

    ts: datetime
    level: str  # "error" | "warning" | "info"
    action: str
    text: str
    cp_id: str | None = None

    @property
    def key(self) -> tuple[str, str | None, str]:
        """The same fact read from the audit log and from the topic has the same key."""
        return (self.action, self.cp_id, self.ts.isoformat(timespec="milliseconds"))


def _feed_text(action: str, cp_id: str | None, data: Mapping[str, Any], actor: str | None) -> str:
    where = f"{cp_id}: " if cp_id else ""
    if action == EventType.WEATHER_ALERT:
        temperature = data.get("temperature_c")
        shown = f" ({temperature} °C)" if temperature is not None else ""
        return f"Weather alert in {data.get('location')}{shown}"
    if action == EventType.WEATHER_CLEARED:
        return f"Weather alert cleared in {data.get('location')}"
    if action == EventType.OPERATOR_COMMAND:
        targets = data.get("cp_ids") or []
        count = data.get("count", len(targets))
        what = targets[0] if count == 1 and targets else f"{count} charge points"
        return f"Operator: {data.get('command')} {what}"
    if action == EventType.CP_STATE_CHANGED:
        return f"{where}broken ({data.get('reason') or 'engine fault'})"
    if action == EventType.CP_KEY_REVOKED:
        return f"{where}key revoked"
    if action == EventType.CP_REGISTERED:
        return f"{where}registered in {data.get('location')}"
    if action == EventType.CP_DEREGISTERED:
        return f"{where}deregistered"
    if action in (EventType.CP_AUTH_FAILED, EventType.DRIVER_AUTH_FAILED):
        who = actor or "unknown"
        return f"Authentication failed for {who}: {data.get('reason') or 'refused'}"
    if action == EventType.SESSION_DENIED:
        return f"{where}charge denied: {data.get('reason') or 'refused'}"
    reason = data.get("reason") or data.get("message") or action
    return f"{where}{reason}"


def _level(action: str, data: Mapping[str, Any]) -> str | None:
    try:
        kind = EventType(action)
    except ValueError:
        return None
    if kind in _ERRORS:
        return "error"
    if kind in _WARNINGS:
        return "warning"
    if kind in _INFO:
        return "info"
    if kind is EventType.CP_STATE_CHANGED and data.get("to") == "BROKEN":
        return "error"
    return None


def feed_item(event: Event) -> FeedItem | None:
    level = _level(str(event.type), event.data)
    if level is None:
        return None
    # Auth failures name the principal; for drivers that is their id, nothing more.
    text = _feed_text(str(event.type), event.cp_id, event.data, event.actor)
    return FeedItem(event.ts, level, str(event.type), text, event.cp_id)


def feed_item_from_audit(entry: Mapping[str, Any]) -> FeedItem | None:
    """The feed line for an entry of ``GET /api/audit``, or None if it is not notable."""
    action = str(entry.get("action") or "")
    params = entry.get("params") or {}
    level = _level(action, params)
    if level is None or not entry.get("ts"):
        return None
    try:
        ts = datetime.fromisoformat(str(entry["ts"]))
    except ValueError:
        return None
    cp_id = entry.get("cp_id")
    return FeedItem(ts, level, action, _feed_text(action, cp_id, params, entry.get("actor")), cp_id)
