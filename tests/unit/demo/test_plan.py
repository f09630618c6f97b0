"""The demo's plan: which CPs in which cities, which drivers charge where."""

from __future__ import annotations

import random
from decimal import Decimal

from demo.plan import CITIES, make_plan, service_file, temperatures_file
from driver.servicefile import parse_service_file


def test_plan_spreads_cps_over_cities_with_different_prices() -> None:
    plan = make_plan(7, 3, random.Random(1))
    assert [cp.id for cp in plan.cps] == [f"CP{i}" for i in range(1, 8)]
    assert [cp.location for cp in plan.cps[:5]] == [c.name for c in CITIES]
    assert plan.cps[5].city == CITIES[0]
    assert len({c.price for c in CITIES}) == len(CITIES)
    assert [c.name for c in plan.cities] == [c.name for c in CITIES]


def test_each_driver_starts_at_its_own_cp_with_a_short_charge() -> None:
    plan = make_plan(3, 3, random.Random(2))
    assert [d.services[0] for d in plan.drivers] == [
        ("CP1", Decimal("1.5")),
        ("CP2", Decimal("1.5")),
        ("CP3", Decimal("1.5")),
    ]
    ids = {cp.id for cp in plan.cps}
    for driver in plan.drivers:
        parsed = parse_service_file(service_file(driver))  # what ev-driver will read
        assert parsed.problems == ()
        assert len(parsed.services) == len(driver.services)
        assert {s.cp_id for s in parsed.services} <= ids
        assert all(s.target_kwh and 1 <= s.target_kwh <= 6 for s in parsed.services)


def test_no_cps_means_no_drivers_and_temperatures_are_warm() -> None:
    assert make_plan(0, 2).drivers == ()
    text = temperatures_file(CITIES)
    assert "Madrid: 18" in text
    assert all(c.temperature_c > 1 for c in CITIES)  # no alert unless the user edits
