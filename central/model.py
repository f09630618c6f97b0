"""What Central's domain holds and needs: live charge points and sessions, and the ports.

Data only, no I/O. :class:`Link` is a connected peer as the domain sees it; the
:class:`Writer` is the database writer (:class:`central.writer.DbWriter` in production,
a list in unit tests).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from sqlalchemy.orm import Session

from central.states import CPState
from central.store import compute_total
from common.db.models import SessionStatus
from common.protocol.messages import MessageType

__all__ = [
    "HOLD_CHARGER",
    "HOLD_OPERATOR",
    "HOLD_REVOKED",
    "HOLD_WEATHER",
    "ActiveSession",
    "ChargePointView",
    "Link",
    "Peers",
    "Writer",
]

T = TypeVar("T")

HOLD_OPERATOR = "operator"
HOLD_WEATHER = "weather"
HOLD_REVOKED = "revoked"
HOLD_CHARGER = "charger"  # an OCPP charger reported itself Unavailable (central/ocpp)


class Link(Protocol):
    """What the domain needs of a connected peer: send without blocking, close."""

    peer_ip: str

    def send(self, msg_type: MessageType, body: Mapping[str, Any]) -> None: ...

    def close(self, reason: str) -> None: ...


class Writer(Protocol):
    """Database work in submission order: ``submit`` now, ``call`` and wait for the commit."""

    def submit(self, fn: Callable[[Session], T]) -> concurrent.futures.Future[T]: ...

    async def call(self, fn: Callable[[Session], T]) -> T: ...


class Peers(Protocol):
    """The other Central processes sharing the CPs (:mod:`central.cluster`); Central
    alone has none."""

    node_id: str

    def tell(self, op: str, body: Mapping[str, Any]) -> None:
        """Send ``op`` to every other process (after what this one wrote before)."""

    async def ask(self, op: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """Send ``op`` to every other process and wait for the CP's owner to answer."""

    def engine_seen(self, cp_id: str, up: bool) -> None:
        """Say whether the engine of a CP served here is connected (others show it)."""


@dataclass
class ActiveSession:
    """A session Central holds in memory: authorised, or supplying."""

    id: str
    cp_id: str
    driver_id: str | None
    price: Decimal
    target_kwh: Decimal | None
    status: str = SessionStatus.AUTHORIZED
    kwh: Decimal = Decimal(0)
    kw: Decimal = Decimal(0)
    authorized_at: float = 0.0  # Central's monotonic clock, for the plug timeout
    started_at: datetime | None = None  # when the vehicle was plugged in (UTC)

    @property
    def eur(self) -> Decimal:
        return compute_total(self.kwh, self.price)

    def to_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.id,
            "cp_id": self.cp_id,
            "driver_id": self.driver_id,
            "status": self.status,
            "kw": float(round(self.kw, 2)),
            "kwh": float(round(self.kwh, 3)),
            "eur": float(self.eur),
            "price_eur_kwh": float(self.price),
            "started_at": self.started_at.isoformat() if self.started_at else None,
        }


@dataclass
class ChargePointView:
    """Everything Central knows about one charge point right now."""

    id: str
    location: str
    price: Decimal
    registered: bool = True
    state: CPState = CPState.DISCONNECTED
    monitor: Link | None = None
    engine: Link | None = None
    engine_ok: bool = True
    holds: set[str] = field(default_factory=set)
    session: ActiveSession | None = None
    last_heartbeat: float = 0.0
    key: bytes | None = None
    fault: str | None = None
    # Several Centrals (central/cluster.py): a remote CP is served by another process
    # (``owner``, None if by none); its state and session are read from the database.
    remote: bool = False
    owner: str | None = None
    remote_engine: bool = False

    @property
    def key_status(self) -> str:
        if HOLD_REVOKED in self.holds:
            return "revoked"
        return "active" if self.key else "none"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "location": self.location,
            "price_eur_kwh": float(self.price),
            "state": str(self.state),
            "registered": self.registered,
            "monitor_connected": self.monitor is not None
            or (self.remote and self.state is not CPState.DISCONNECTED),
            "engine_connected": self.engine is not None or self.remote_engine,
            "engine_ok": self.engine_ok,
            "stopped_by": sorted(self.holds),
            "key_status": self.key_status,
            "fault": self.fault,
            "session": self.session.to_dict() if self.session else None,
            "central": self.owner,
        }
