"""The one copy of Central's live state, and the ways a change leaves it.

:class:`Fleet` holds every charge point, the connected drivers and the weather alerts.
It fires state transitions (the table in :mod:`central.states`), records events through
the writer, tells monitors and drivers, and answers refusals with an ``error`` frame
that is also audited. The services (:mod:`central.chargepoints`, :mod:`central.sessions`,
:mod:`central.operator`, :mod:`central.weather`) all work on one Fleet.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from central import store
from central.errors import CentralError, NotFound
from central.model import ChargePointView, Link, Peers, Writer
from central.states import CPState, Trigger, next_state
from common.db.models import utcnow
from common.events import Event, EventType, record
from common.protocol.messages import ErrorCode, MessageType

__all__ = ["SOURCE", "Fleet"]

log = logging.getLogger(__name__)
SOURCE = "central"


class Fleet:
    """Live state of every CP and driver link.

    Args:
        writer: database writer (events, sessions, state).
        clock: monotonic seconds (heart-beats, timeouts, energy bounds).
        wall: the current UTC time (session times read back from the database).
    """

    def __init__(
        self,
        writer: Writer,
        clock: Callable[[], float],
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.writer = writer
        self.clock = clock
        self.wall = wall
        self.cps: dict[str, ChargePointView] = {}
        self.drivers: dict[str, Link] = {}
        self.alerts: set[str] = set()
        self.readings: dict[str, dict[str, Any]] = {}  # location -> latest weather reading
        self.recent: deque[str] = deque(maxlen=8)  # last notable events, for the console
        self.peers: Peers | None = None  # other Central processes (central/cluster.py)

    def get(self, cp_id: str) -> ChargePointView:
        """The CP, registered or not.

        Raises:
            NotFound: ``unknown_cp``.
        """
        cp = self.cps.get(cp_id)
        if cp is None:
            raise NotFound(f"unknown charge point {cp_id!r}", code=ErrorCode.UNKNOWN_CP)
        return cp

    # ------------------------------------------------------------- changes
    def emit(self, event: Event) -> None:
        """Record an event soon (ordered after everything submitted before it)."""
        self.writer.submit(partial(record, event=event))

    async def record(self, event: Event) -> None:
        """Record an event and wait until it is committed (operator actions answer after)."""
        await self.writer.call(partial(record, event=event))

    def note(self, text: str) -> None:
        self.recent.append(f"{time.strftime('%H:%M:%S')} {text}")

    def fire(self, cp: ChargePointView, trigger: Trigger, reason: str) -> None:
        """Apply ``trigger`` to the CP's state; persist, audit and tell its monitor."""
        old = cp.state
        new = next_state(old, trigger)
        if new is old:
            return
        cp.state = new
        self.note(f"{cp.id}: {old} -> {new} ({reason})")
        log.info(
            "state changed",
            extra={"fields": {"cp_id": cp.id, "from": old, "to": new, "reason": reason}},
        )
        self.writer.submit(
            partial(store.persist_state, cp_id=cp.id, old=old, new=new, reason=reason)
        )
        if cp.monitor is not None:
            cp.monitor.send(MessageType.STATUS, {"state": str(new), "reason": reason})

    def driver_up(self, driver_id: str, link: Link) -> None:
        old = self.drivers.get(driver_id)
        self.drivers[driver_id] = link
        if old is not None and old is not link:
            old.close("replaced by a new connection of the same driver")

    def driver_lost(self, driver_id: str, link: Link) -> None:
        if self.drivers.get(driver_id) is link:
            del self.drivers[driver_id]

    def tell_driver(
        self, driver_id: str | None, msg_type: MessageType, body: Mapping[str, Any]
    ) -> bool:
        """Send to the driver if connected here; True if sent.

        A driver not connected here may be connected to another Central: it is told there.
        """
        link = self.drivers.get(driver_id) if driver_id else None
        if link is None:
            if driver_id and self.peers is not None:
                self.peers.tell(
                    "to_driver", {"driver_id": driver_id, "type": str(msg_type), "body": body}
                )
            return False
        link.send(msg_type, body)
        return True

    def refuse(
        self,
        link: Link,
        error: CentralError,
        about: MessageType,
        *,
        cp_id: str | None = None,
        driver_id: str | None = None,
    ) -> None:
        """Answer a refused message with an ``error`` frame and put it in the audit log."""
        link.send(MessageType.ERROR, error.body().to_body())
        who = cp_id or driver_id or "?"
        self.note(f"refused {about} from {who}: {error.code}")
        log.info(
            "message refused",
            extra={"fields": {"from": who, "message": about, "code": error.code}},
        )
        self.emit(
            Event(
                EventType.ERROR,
                SOURCE,
                {
                    "code": str(error.code),
                    "reason": error.message,
                    "message": str(about),
                    "session_id": error.session_id,
                },
                cp_id=cp_id,
                driver_id=driver_id,
                actor=who,
                source_ip=link.peer_ip,
            )
        )

    # ------------------------------------------------------------- reading
    def snapshot(self) -> list[dict[str, Any]]:
        return [cp.to_dict() for cp in sorted(self.cps.values(), key=lambda c: c.id)]

    def counts(self) -> dict[str, int]:
        out = {str(state): 0 for state in CPState}
        for cp in self.cps.values():
            if cp.registered:
                out[str(cp.state)] += 1
        return out

    def free_cps(self) -> list[dict[str, Any]]:
        return [
            {"id": cp.id, "location": cp.location, "price_eur_kwh": float(cp.price)}
            for cp in sorted(self.cps.values(), key=lambda c: c.id)
            if cp.state is CPState.ACTIVATED
            and cp.session is None
            and (cp.engine is not None or cp.remote_engine)
        ]

    def live_sessions(self) -> list[dict[str, Any]]:
        return [cp.session.to_dict() for cp in self.cps.values() if cp.session is not None]

    def driver_session(self, driver_id: str) -> dict[str, Any] | None:
        for cp in self.cps.values():
            if cp.session is not None and cp.session.driver_id == driver_id:
                return cp.session.to_dict()
        return None
