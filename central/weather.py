"""Weather holds: a cold alert stops a location's CPs, clearing it restores them.

A supplying CP finishes its supply first, then stops (the ``SUPPLY_ENDED_STOPPED``
transition). Readings are kept per location for operators and recorded as events.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from central import store
from central.errors import NotFound
from central.fleet import SOURCE, Fleet
from central.model import HOLD_WEATHER, ChargePointView
from central.states import CPState, Trigger
from common.events import Event, EventType
from common.protocol.messages import ErrorCode

__all__ = ["READING_OK", "WeatherHolds"]

READING_OK = "ok"  # a reading with a temperature (API_Central's default status)


class WeatherHolds:
    """Alerts and readings from the Weather office (or an operator)."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    async def alert(
        self, location: str, temperature: float | None, actor: str, source_ip: str | None = None
    ) -> int:
        """Cold alert: idle CPs at the location stop now, supplying ones when they finish."""
        fleet = self._fleet
        fresh = location not in fleet.alerts
        affected = self.apply(location, True)
        if fresh:
            await fleet.writer.call(
                partial(
                    store.persist_alert, location=location, temperature=temperature, actor=actor
                )
            )
            await fleet.record(
                Event(
                    EventType.WEATHER_ALERT,
                    SOURCE,
                    {
                        "location": location,
                        "temperature_c": temperature,
                        "cp_ids": [cp.id for cp in affected],
                    },
                    actor=actor,
                    source_ip=source_ip,
                )
            )
            if fleet.peers is not None:
                fleet.peers.tell("weather", {"location": location, "alert": True})
            if temperature is not None:
                # Measured there just now: the location's latest reading, as the board shows
                # it from the alert event (a snapshot of the readings must agree).
                self._keep(location, temperature, READING_OK, None)
        return len(affected)

    def apply(self, location: str, alert: bool) -> list[ChargePointView]:
        """Hold (or release) the location's CPs served here; returns all of its CPs."""
        fleet = self._fleet
        if alert:
            fleet.alerts.add(location)
        else:
            fleet.alerts.discard(location)
        reading = fleet.readings.get(location)
        if reading is not None:  # a new dict: API_Central may be serialising the old one
            fleet.readings[location] = {**reading, "alert": alert}
        affected = [cp for cp in fleet.cps.values() if cp.location == location]
        for cp in affected:
            if cp.remote:
                continue  # its owner holds it (central/remote.py)
            if alert:
                cp.holds.add(HOLD_WEATHER)
                if cp.state in (CPState.ACTIVATED, CPState.STOPPED):
                    fleet.fire(cp, Trigger.STOP, f"weather alert in {location}")
            else:
                cp.holds.discard(HOLD_WEATHER)
                if cp.state is CPState.STOPPED and not cp.holds:
                    fleet.fire(cp, Trigger.RESUME, f"weather alert cleared in {location}")
        return affected

    async def clear(self, location: str, actor: str, source_ip: str | None = None) -> int:
        """The alert ends: CPs nothing else holds are ACTIVATED again.

        Raises:
            NotFound: ``no_alert``.
        """
        fleet = self._fleet
        if location not in fleet.alerts:
            raise NotFound(f"no weather alert for {location!r}", code=ErrorCode.NO_ALERT)
        affected = self.apply(location, False)
        await fleet.writer.call(
            partial(
                store.persist_alert, location=location, temperature=None, actor=actor, clear=True
            )
        )
        await fleet.record(
            Event(
                EventType.WEATHER_CLEARED,
                SOURCE,
                {"location": location, "cp_ids": [cp.id for cp in affected]},
                actor=actor,
                source_ip=source_ip,
            )
        )
        if fleet.peers is not None:
            fleet.peers.tell("weather", {"location": location, "alert": False})
        return len(affected)

    def reading(
        self,
        location: str,
        temperature: float | None,
        status: str,
        actor: str,
        reason: str | None = None,
    ) -> None:
        """Latest temperature (or UNKNOWN, with why) per location, shown to operators."""
        reading = self._keep(location, temperature, status, reason)
        self._fleet.emit(
            Event(EventType.WEATHER_READING, SOURCE, {"location": location, **reading}, actor=actor)
        )

    def _keep(
        self,
        location: str,
        temperature: float | None,
        status: str,
        reason: str | None,
        tell: bool = True,
    ) -> dict[str, Any]:
        """Make this the location's latest reading, here and (``tell``) on every other
        Central."""
        reading = {
            "temperature_c": temperature,
            "status": status,
            "reason": reason,
            "alert": location in self._fleet.alerts,
        }
        self._fleet.readings[location] = reading
        if tell and self._fleet.peers is not None:  # all API_Centrals show it
            self._fleet.peers.tell("reading", {"location": location, **reading})
        return reading

    def remember(self, location: str, reading: dict[str, Any]) -> None:
        """A reading another Central received (and recorded): shown here too."""
        temperature, reason = reading.get("temperature_c"), reading.get("reason")
        self._keep(location, temperature, str(reading["status"]), reason, tell=False)
