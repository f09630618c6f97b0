"""What the demo runs: charge points over a few cities, drivers and their service files.

Pure: no processes, no sockets. The runner turns a :class:`Plan` into child processes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "CITIES",
    "ChargePointPlan",
    "City",
    "DriverPlan",
    "Plan",
    "make_plan",
    "service_file",
    "temperatures_file",
]


@dataclass(frozen=True)
class City:
    name: str
    price: Decimal  # EUR/kWh for every CP of the city
    temperature_c: float  # what the simulated weather provider starts from


# Warm enough that no cold alert fires by itself: an unattended run keeps charging.
# Make one cold by editing the temperatures file while the demo runs (docs/demo.md).
CITIES: tuple[City, ...] = (
    City("Madrid", Decimal("0.35"), 18.0),
    City("Barcelona", Decimal("0.42"), 16.0),
    City("Valencia", Decimal("0.29"), 21.0),
    City("Sevilla", Decimal("0.31"), 24.0),
    City("Bilbao", Decimal("0.38"), 12.0),
)


@dataclass(frozen=True)
class ChargePointPlan:
    id: str
    city: City
    ocpp: bool = False  # an OCPP 1.6J charger (ev-ocpp-sim), not an engine and monitor

    @property
    def location(self) -> str:
        return self.city.name

    @property
    def price(self) -> Decimal:
        return self.city.price


@dataclass(frozen=True)
class DriverPlan:
    id: str
    services: tuple[tuple[str, Decimal], ...]  # (CP id, target kWh), run in order


@dataclass(frozen=True)
class Plan:
    cps: tuple[ChargePointPlan, ...]
    drivers: tuple[DriverPlan, ...]

    @property
    def cities(self) -> tuple[City, ...]:
        seen: dict[str, City] = {}
        for cp in self.cps:
            seen.setdefault(cp.city.name, cp.city)
        return tuple(seen.values())


def make_plan(
    cps: int,
    drivers: int,
    rng: random.Random | None = None,
    services_per_driver: int = 6,
    ocpp: int = 0,
) -> Plan:
    """``cps`` charge points round-robin over :data:`CITIES`; ``drivers`` drivers.

    ``ocpp`` more charge points, OC1, OC2..., are OCPP 1.6J chargers; they continue the
    round of cities and take part in the drivers' rounds like the others.

    Each driver's round starts at a different CP (while there are enough) with a short
    charge, so the first tickets come within seconds of the start; the rest of the round
    is random CPs and targets of 2-6 kWh.
    """
    rng = rng or random.Random()
    native = max(cps, 0)
    cp_plans = tuple(
        ChargePointPlan(f"CP{i + 1}", CITIES[i % len(CITIES)]) for i in range(native)
    ) + tuple(
        ChargePointPlan(f"OC{i + 1}", CITIES[(native + i) % len(CITIES)], ocpp=True)
        for i in range(max(ocpp, 0))
    )
    driver_plans: list[DriverPlan] = []
    if cp_plans:
        for d in range(max(drivers, 0)):
            first = cp_plans[d % len(cp_plans)].id
            services = [(first, Decimal("1.5"))]
            for _ in range(services_per_driver - 1):
                target = Decimal(rng.randrange(20, 61)) / 10
                services.append((rng.choice(cp_plans).id, target))
            driver_plans.append(DriverPlan(f"D{d + 1}", tuple(services)))
    return Plan(cp_plans, tuple(driver_plans))


def service_file(driver: DriverPlan) -> str:
    """The driver's service file (``ev-driver run FILE``): one ``CP kWh`` per line."""
    lines = [f"# {driver.id}'s round; the demo runs it again and again (edit it freely)"]
    lines += [f"{cp} {kwh}" for cp, kwh in driver.services]
    return "\n".join(lines) + "\n"


def temperatures_file(cities: tuple[City, ...]) -> str:
    """The simulated weather provider's file: ``City: temperature`` per line."""
    lines = ["# Edit a temperature below 0 to raise a cold alert; above +1 to clear it."]
    lines += [f"{city.name}: {city.temperature_c:g}" for city in cities]
    return "\n".join(lines) + "\n"
