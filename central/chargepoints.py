"""Charge points' connections and health: monitors, engines, heart-beats, registrations.

Monitor OK + engine OK → ACTIVATED; monitor OK + engine KO → BROKEN; monitor down →
DISCONNECTED (DESIGN.md). A message acts only on the CP its connection authenticated
as, and only while that connection is the CP's current one: a replaced monitor's late
heart-beat changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from central.fleet import Fleet
from central.model import HOLD_OPERATOR, HOLD_REVOKED, HOLD_WEATHER, ChargePointView, Link
from central.reads import CPRow, OpenSession
from central.sessions import Sessions
from central.states import CPState, Trigger
from common.protocol.messages import MessageType

__all__ = ["ChargePoints"]

log = logging.getLogger(__name__)


# A fleet of 10,000 CPs beating every second is 10,000 frames/s, Central's whole budget;
# every 5 s it is a fifth of that. A lost connection is seen at once (the socket
# closes); only a silent one (a cut cable, a hung host) waits for the timeout, and
# faults are reported when they happen, not with the next beat.
HEARTBEAT_INTERVAL = 5.0
HEARTBEATS_MISSED = 3  # the default timeout: this many intervals of silence


class ChargePoints:
    """The lifecycle of every CP's monitor and engine links.

    Args:
        fleet: the live state.
        sessions: ends a supply when its CP fails or goes away.
        heartbeat_interval: how often monitors heart-beat; told to each at login.
        heartbeat_timeout: monitor silence that makes a CP DISCONNECTED.
    """

    def __init__(
        self,
        fleet: Fleet,
        sessions: Sessions,
        *,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_INTERVAL * HEARTBEATS_MISSED,
    ):
        self._fleet = fleet
        self._sessions = sessions
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout

    # ---------------------------------------------------------- registrations
    def load(
        self, cps: Iterable[CPRow], alerts: Iterable[str], open_sessions: Iterable[OpenSession]
    ) -> None:
        """Start from the database: every CP DISCONNECTED, holds and open sessions restored."""
        self._fleet.alerts = set(alerts)
        for row in cps:
            self._apply_row(row)
        self._sessions.load(open_sessions)

    def sync_registrations(self, rows: Iterable[CPRow]) -> None:
        """Apply registrations, deregistrations and price changes made by others."""
        for row in rows:
            cp = self._fleet.cps.get(row.id)
            was_registered = cp.registered if cp else None
            cp = self._apply_row(row)
            if was_registered and not row.registered and not cp.remote:
                log.info("charge point deregistered", extra={"fields": {"cp_id": cp.id}})
                self._sessions.end_supply(cp, "deregistered")
                self._cut(cp, "deregistered")

    def _apply_row(self, row: CPRow) -> ChargePointView:
        cp = self._fleet.cps.get(row.id)
        if cp is None:
            cp = ChargePointView(row.id, row.location, row.price)
            cp.remote = self._fleet.peers is not None  # served by whoever its monitor reaches
            self._fleet.cps[row.id] = cp
        cp.location, cp.price, cp.registered = row.location, row.price, row.registered
        if row.operator_stopped:
            cp.holds.add(HOLD_OPERATOR)
        if cp.location in self._fleet.alerts:
            cp.holds.add(HOLD_WEATHER)
        return cp

    def _cut(self, cp: ChargePointView, reason: str) -> None:
        """Tell both links their key is gone and close them."""
        for link in (cp.monitor, cp.engine):
            if link is not None:
                link.send(MessageType.KEY_REVOKED, {"reason": reason})
                link.close(reason)
        cp.key = None

    def revoke(self, cp: ChargePointView) -> None:
        """Invalidate the CP's session key: STOPPED until its monitor re-authenticates."""
        cp.holds.add(HOLD_REVOKED)
        self._sessions.end_supply(cp, "key_revoked")
        if cp.state in (CPState.ACTIVATED, CPState.SUPPLYING, CPState.STOPPED):
            self._fleet.fire(cp, Trigger.STOP, "key revoked")
        self._cut(cp, "revoked by operator")
        cp.monitor = cp.engine = None

    # --------------------------------------------------------------- monitor
    def monitor_up(self, cp_id: str, link: Link, key: bytes, engine_ok: bool = True) -> None:
        """A monitor authenticated: the CP leaves DISCONNECTED (or a revocation ends).

        Raises:
            NotFound: ``unknown_cp``.
        """
        cp = self._fleet.get(cp_id)
        old = cp.monitor
        cp.monitor, cp.key, cp.engine_ok = link, key, engine_ok
        cp.last_heartbeat = self._fleet.clock()
        if old is not None and old is not link:
            old.close("replaced by a new monitor connection")
        revoked = HOLD_REVOKED in cp.holds
        cp.holds.discard(HOLD_REVOKED)
        if cp.state is CPState.DISCONNECTED or (revoked and cp.state is CPState.STOPPED):
            trigger = Trigger.MONITOR_UP
            if not engine_ok:
                trigger = Trigger.MONITOR_UP_FAULTY
            elif cp.holds:
                trigger = Trigger.MONITOR_UP_STOPPED
            self._fleet.fire(cp, trigger, "monitor authenticated")
        link.send(
            MessageType.STATUS,
            {
                "state": str(cp.state),
                "reason": "authenticated",
                "heartbeat_interval": self.heartbeat_interval,
            },
        )

    def heartbeat(self, cp_id: str, link: Link, engine_ok: bool, reason: str = "") -> None:
        """A monitor's heart-beat, with its engine's health."""
        cp = self._fleet.cps.get(cp_id)
        if cp is None or cp.monitor is not link:
            return
        cp.last_heartbeat = self._fleet.clock()
        self.engine_health(cp_id, link, engine_ok, reason)

    def engine_health(self, cp_id: str, link: Link, ok: bool, reason: str = "") -> None:
        """Monitor says the engine is OK or KO; a KO during a supply ends it at once."""
        cp = self._fleet.cps.get(cp_id)
        if cp is None or cp.monitor is not link or ok == cp.engine_ok:
            return
        cp.engine_ok = ok
        if not ok:
            cp.fault = reason or "engine KO"
            self._sessions.end_supply(cp, "fault")
            self._fleet.fire(cp, Trigger.ENGINE_FAULT, cp.fault)
            return
        cp.fault = None
        if cp.state is CPState.BROKEN:
            trigger = Trigger.ENGINE_RECOVERED_STOPPED if cp.holds else Trigger.ENGINE_RECOVERED
            self._fleet.fire(cp, trigger, "engine recovered")

    def monitor_lost(self, cp_id: str, link: Link, reason: str) -> None:
        cp = self._fleet.cps.get(cp_id)
        if cp is None or cp.monitor is not link:
            return
        cp.monitor = None
        if HOLD_REVOKED in cp.holds:
            return  # Central cut it; the CP stays STOPPED until re-authentication
        self._sessions.end_supply(cp, "monitor_lost")
        if cp.state is not CPState.DISCONNECTED:
            self._fleet.fire(cp, Trigger.MONITOR_LOST, reason)

    def check_heartbeats(self) -> list[str]:
        """Disconnect monitors silent for longer than the timeout; returns their CP ids.

        Also withdraws authorisations whose vehicle never came.
        """
        now = self._fleet.clock()
        silent = [
            cp
            for cp in self._fleet.cps.values()
            if cp.monitor is not None and now - cp.last_heartbeat > self.heartbeat_timeout
        ]
        for cp in silent:
            link = cp.monitor
            assert link is not None
            self.monitor_lost(cp.id, link, "heartbeat timeout")
            link.close("heartbeat timeout")
        self._sessions.expire()
        return [cp.id for cp in silent]

    # ---------------------------------------------------------------- engine
    def engine_key(self, cp_id: str) -> bytes | None:
        """The key an engine must prove to connect (handed over by its monitor)."""
        cp = self._fleet.cps.get(cp_id)
        if cp is None or not cp.registered or HOLD_REVOKED in cp.holds:
            return None
        return cp.key

    def engine_up(self, cp_id: str, link: Link) -> None:
        cp = self._fleet.get(cp_id)
        old = cp.engine
        cp.engine = link
        if old is not None and old is not link:
            old.close("replaced by a new engine connection")
        if self._fleet.peers is not None:
            self._fleet.peers.engine_seen(cp_id, True)

    def engine_lost(self, cp_id: str, link: Link) -> None:
        cp = self._fleet.cps.get(cp_id)
        if cp is not None and cp.engine is link:
            cp.engine = None
            if self._fleet.peers is not None:
                self._fleet.peers.engine_seen(cp_id, False)
