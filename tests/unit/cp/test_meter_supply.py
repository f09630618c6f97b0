"""The meter's arithmetic and the supply state table."""

from __future__ import annotations

import pytest

from cp_engine.errors import IllegalSupplyTransition
from cp_engine.meter import advance, cost
from cp_engine.supply import TRANSITIONS, SupplyEvent, SupplyState, next_state


def test_one_real_second_at_speed_3600_is_one_hour_of_power() -> None:
    assert advance(0.0, 11.0, 1.0, 3600.0, None).kwh == 11.0
    assert advance(2.0, 7.2, 0.5, 1.0, None).kwh == pytest.approx(2.001)


def test_target_caps_the_energy_and_says_so() -> None:
    reading = advance(9.9, 11.0, 60.0, 60.0, 10.0)
    assert (reading.kwh, reading.reached) == (10.0, True)
    assert advance(1.0, 11.0, 1.0, 1.0, 10.0).reached is False


def test_time_going_backwards_adds_nothing() -> None:
    assert advance(1.5, 11.0, -4.0, 1.0, None).kwh == 1.5


def test_cost_is_rounded_to_the_cent() -> None:
    assert cost(2.5, 0.40) == 1.0
    assert cost(0.125, 0.30) == 0.04


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [
        (SupplyState.IDLE, SupplyEvent.AUTHORIZE, SupplyState.AUTHORIZED),
        (SupplyState.AUTHORIZED, SupplyEvent.PLUG, SupplyState.SUPPLYING),
        (SupplyState.AUTHORIZED, SupplyEvent.STOP, SupplyState.IDLE),
        (SupplyState.SUPPLYING, SupplyEvent.UNPLUG, SupplyState.IDLE),
        (SupplyState.SUPPLYING, SupplyEvent.FAULT, SupplyState.IDLE),
        (SupplyState.SUPPLYING, SupplyEvent.TARGET_REACHED, SupplyState.IDLE),
    ],
)
def test_legal_transitions(state: SupplyState, event: SupplyEvent, expected: SupplyState) -> None:
    assert next_state(state, event) is expected


def test_every_missing_pair_raises() -> None:
    for state in SupplyState:
        for event in SupplyEvent:
            if (state, event) not in TRANSITIONS:
                with pytest.raises(IllegalSupplyTransition, match=str(event)):
                    next_state(state, event)
