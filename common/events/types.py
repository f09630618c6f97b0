"""Event envelope published on ``evcharging.events`` (DESIGN.md, "Events").

Value: JSON ``{event_id, type, ts, source, cp_id?, driver_id?, session_id?, actor?,
source_ip?, data}``; key: the CP id, else the driver id.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from common.errors import EVChargingError

__all__ = ["AUDITED", "AUDIT_TOPIC", "TOPIC", "Event", "EventDecodeError", "EventType"]

TOPIC = "evcharging.events"
# Signed checkpoints of the audit chain's head (common.db.chain): a copy outside the
# database, so a truncated chain is noticed. Only Central reads it.
AUDIT_TOPIC = "evcharging.audit"


class EventDecodeError(EVChargingError):
    """A message on the topic is not a well-formed event."""


class EventType(StrEnum):
    CP_REGISTERED = "cp.registered"
    CP_DEREGISTERED = "cp.deregistered"
    CP_AUTHENTICATED = "cp.authenticated"
    CP_AUTH_FAILED = "cp.auth_failed"
    CP_STATE_CHANGED = "cp.state_changed"
    CP_KEY_REVOKED = "cp.key_revoked"
    CP_PRICE_CHANGED = "cp.price_changed"
    CP_CREDENTIAL_ROTATED = "cp.credential_rotated"
    REGISTRY_VERIFY_FAILED = "registry.verify_failed"
    REGISTRY_LOCKOUT = "registry.lockout"
    DRIVER_CREATED = "driver.created"
    DRIVER_AUTHENTICATED = "driver.authenticated"
    DRIVER_AUTH_FAILED = "driver.auth_failed"
    SESSION_AUTHORIZED = "session.authorized"
    SESSION_DENIED = "session.denied"
    SESSION_STARTED = "session.started"
    SESSION_PROGRESS = "session.progress"
    SESSION_ENDED = "session.ended"
    WEATHER_READING = "weather.reading"
    WEATHER_ALERT = "weather.alert"
    WEATHER_CLEARED = "weather.cleared"
    OPERATOR_COMMAND = "operator.command"
    ERROR = "error"
    AUDIT_CHECKPOINT = "audit.checkpoint"


# Everything but the high-rate, low-value streams goes to the audit log; a checkpoint
# is about the log itself (auditing it would move the head it names).
AUDITED = frozenset(EventType) - {
    EventType.SESSION_PROGRESS,
    EventType.WEATHER_READING,
    EventType.AUDIT_CHECKPOINT,
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Event:
    """One fact that happened, immutable once created."""

    type: EventType
    source: str
    data: dict[str, Any] = field(default_factory=dict)
    cp_id: str | None = None
    driver_id: str | None = None
    session_id: str | None = None
    actor: str | None = None
    source_ip: str | None = None
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    ts: datetime = field(default_factory=_utcnow)

    @property
    def key(self) -> str | None:
        """Partition key: events of one CP (or driver) stay in order."""
        return self.cp_id or self.driver_id

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "event_id": self.event_id,
            "type": str(self.type),
            "ts": self.ts.astimezone(UTC).isoformat(timespec="microseconds"),
            "source": self.source,
        }
        for name in ("cp_id", "driver_id", "session_id", "actor", "source_ip"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        out["data"] = self.data
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Event:
        """Parse a topic value. Raises :class:`EventDecodeError` on anything malformed."""
        try:
            obj = json.loads(raw)
            return cls(
                type=EventType(obj["type"]),
                source=str(obj["source"]),
                data=dict(obj.get("data") or {}),
                cp_id=obj.get("cp_id"),
                driver_id=obj.get("driver_id"),
                session_id=obj.get("session_id"),
                actor=obj.get("actor"),
                source_ip=obj.get("source_ip"),
                event_id=str(uuid.UUID(obj["event_id"])),
                ts=datetime.fromisoformat(obj["ts"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EventDecodeError(f"malformed event: {exc}") from None
