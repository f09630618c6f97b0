"""Central's domain, composed: one :class:`~central.fleet.Fleet` and the services on it.

    Network
     ├── fleet          live state: CPs, drivers, alerts; transitions, events, refusals
     ├── chargepoints   monitors, engines, heart-beats, registrations
     ├── sessions       authorise, supply, meter, settle, tickets (the energy rules)
     ├── operator       stop/resume, revoke, price, end a session
     └── weather        alerts and readings

Nothing here touches a socket: the TCP server (:mod:`central.server`) feeds it through
:mod:`central.routing`, API_Central and the console call the operator and weather
services, and everything it says goes out through links and the database writer.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal

from central.chargepoints import HEARTBEAT_INTERVAL, HEARTBEATS_MISSED, ChargePoints
from central.energy import DEFAULT_MAX_KW
from central.fleet import Fleet
from central.model import Writer
from central.operator import Operator
from central.sessions import Sessions
from central.weather import WeatherHolds
from common.db.models import utcnow

__all__ = ["Network"]


class Network:
    """Every part of Central's domain, wired to one writer and one clock.

    Args:
        writer: database writer.
        clock: monotonic seconds.
        heartbeat_interval: how often monitors heart-beat (told to each at login).
        heartbeat_timeout: monitor silence that makes a CP DISCONNECTED.
        authorize_timeout: how long an engine has to accept an authorisation.
        plug_timeout: how long an authorised session waits for the vehicle.
        max_kw: the highest power any CP of the network supplies (the energy bound).
        wall: the current UTC time.
    """

    def __init__(
        self,
        writer: Writer,
        clock: Callable[[], float],
        *,
        heartbeat_interval: float = HEARTBEAT_INTERVAL,
        heartbeat_timeout: float = HEARTBEAT_INTERVAL * HEARTBEATS_MISSED,
        authorize_timeout: float = 5.0,
        plug_timeout: float = 120.0,
        max_kw: Decimal = DEFAULT_MAX_KW,
        wall: Callable[[], datetime] = utcnow,
    ) -> None:
        self.fleet = Fleet(writer, clock, wall)
        self.sessions = Sessions(
            self.fleet,
            authorize_timeout=authorize_timeout,
            plug_timeout=plug_timeout,
            max_kw=max_kw,
        )
        self.chargepoints = ChargePoints(
            self.fleet,
            self.sessions,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
        )
        self.operator = Operator(self.fleet, self.chargepoints, self.sessions)
        self.weather = WeatherHolds(self.fleet)
