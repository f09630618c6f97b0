"""The charge-point state table: DESIGN.md's truth table, and illegal moves raise."""

from __future__ import annotations

import pytest

from central.states import TRANSITIONS, CPState, IllegalTransition, Trigger, next_state


@pytest.mark.parametrize(
    ("state", "trigger", "expected"),
    [
        (CPState.DISCONNECTED, Trigger.MONITOR_UP, CPState.ACTIVATED),
        (CPState.DISCONNECTED, Trigger.MONITOR_UP_FAULTY, CPState.BROKEN),
        (CPState.ACTIVATED, Trigger.ENGINE_FAULT, CPState.BROKEN),
        (CPState.BROKEN, Trigger.ENGINE_RECOVERED, CPState.ACTIVATED),
        (CPState.SUPPLYING, Trigger.MONITOR_LOST, CPState.DISCONNECTED),
        (CPState.SUPPLYING, Trigger.SUPPLY_ENDED_STOPPED, CPState.STOPPED),
        (CPState.STOPPED, Trigger.RESUME, CPState.ACTIVATED),
    ],
)
def test_truth_table(state: CPState, trigger: Trigger, expected: CPState) -> None:
    assert next_state(state, trigger) is expected


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        (CPState.DISCONNECTED, Trigger.SUPPLY_STARTED),
        (CPState.BROKEN, Trigger.SUPPLY_STARTED),
        (CPState.STOPPED, Trigger.SUPPLY_STARTED),
        (CPState.ACTIVATED, Trigger.SUPPLY_ENDED),
        (CPState.DISCONNECTED, Trigger.MONITOR_LOST),
    ],
)
def test_illegal_transitions_raise(state: CPState, trigger: Trigger) -> None:
    with pytest.raises(IllegalTransition, match=f"{trigger} is not allowed in state {state}"):
        next_state(state, trigger)


def test_only_activated_can_start_supplying() -> None:
    starts = {s for (s, t), to in TRANSITIONS.items() if to is CPState.SUPPLYING}
    assert starts == {CPState.ACTIVATED}


def test_monitor_loss_is_always_disconnected() -> None:
    for (state, trigger), to in TRANSITIONS.items():
        if trigger is Trigger.MONITOR_LOST:
            assert to is CPState.DISCONNECTED, state
