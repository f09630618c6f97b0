"""The alert decision: bands, hysteresis, UNKNOWN on missing data, what to tell Central."""

from __future__ import annotations

import pytest

from weather.decision import (
    INITIAL,
    Band,
    Command,
    Status,
    Verdict,
    band_of,
    command_for,
    decide,
)

OK = Verdict(Status.OK, False)
ALERT = Verdict(Status.ALERT, True)


@pytest.mark.parametrize(
    ("temperature", "band"),
    [
        (-10.0, Band.COLD),
        (-0.01, Band.COLD),
        (0.0, Band.MILD),
        (0.5, Band.MILD),
        (1.0, Band.MILD),
        (1.01, Band.WARM),
        (25.0, Band.WARM),
        (None, Band.MISSING),
    ],
)
def test_bands_with_the_default_hysteresis(temperature: float | None, band: Band) -> None:
    assert band_of(temperature, 1.0) is band


def test_zero_hysteresis_clears_just_above_zero() -> None:
    assert band_of(0.0, 0.0) is Band.MILD
    assert band_of(0.001, 0.0) is Band.WARM


def test_negative_hysteresis_is_refused() -> None:
    with pytest.raises(ValueError, match="hysteresis"):
        band_of(5.0, -1.0)


@pytest.mark.parametrize(
    ("before", "temperature", "after"),
    [
        (OK, -0.5, ALERT),  # below zero raises
        (OK, 0.0, OK),  # zero is not below zero
        (OK, 0.7, OK),
        (OK, 9.0, OK),
        (ALERT, -3.0, ALERT),
        (ALERT, 0.0, ALERT),  # inside the band: keep the alert
        (ALERT, 1.0, ALERT),  # the band includes its top
        (ALERT, 1.5, OK),  # above +hysteresis clears
        (OK, None, Verdict(Status.UNKNOWN, False)),  # missing data never raises
        (ALERT, None, Verdict(Status.UNKNOWN, True)),  # ...nor clears
        (Verdict(Status.UNKNOWN, True), 0.5, ALERT),  # back from UNKNOWN, inside the band
        (Verdict(Status.UNKNOWN, False), 0.5, OK),
        (Verdict(Status.UNKNOWN, True), 2.0, OK),
        (Verdict(Status.UNKNOWN, False), -2.0, ALERT),
    ],
)
def test_transitions(before: Verdict, temperature: float | None, after: Verdict) -> None:
    assert decide(before, temperature, 1.0) == after


def test_a_new_location_has_no_opinion_until_it_leaves_the_band() -> None:
    assert Verdict(Status.UNKNOWN, None) == INITIAL
    assert decide(INITIAL, None, 1.0) == INITIAL
    # Inside the band: whatever Central holds (perhaps an alert from before a restart) stays.
    assert decide(INITIAL, 0.5, 1.0) == Verdict(Status.OK, None)
    assert decide(INITIAL, -1.0, 1.0) == ALERT
    assert decide(INITIAL, 3.0, 1.0) == OK


def test_no_flapping_around_zero() -> None:
    temperatures = [2.0, 0.3, -0.2, 0.4, -0.1, 0.9, 0.2, 1.0, 1.2, 0.8, -0.3]
    verdict, statuses = INITIAL, []
    for temperature in temperatures:
        verdict = decide(verdict, temperature, 1.0)
        statuses.append(verdict.status)
    assert statuses == [
        Status.OK,
        Status.OK,
        Status.ALERT,  # -0.2
        Status.ALERT,
        Status.ALERT,
        Status.ALERT,
        Status.ALERT,
        Status.ALERT,  # 1.0 is still in the band
        Status.OK,  # 1.2
        Status.OK,
        Status.ALERT,
    ]


def test_failures_in_the_middle_of_an_alert_keep_it() -> None:
    verdict = decide(INITIAL, -5.0, 1.0)
    for _ in range(3):
        verdict = decide(verdict, None, 1.0)
        assert verdict == Verdict(Status.UNKNOWN, True)
    assert decide(verdict, 5.0, 1.0) == OK


@pytest.mark.parametrize(
    ("wanted", "confirmed", "command"),
    [
        (None, None, None),
        (None, True, None),
        (True, None, Command.RAISE),
        (True, False, Command.RAISE),
        (True, True, None),
        (False, None, Command.CLEAR),
        (False, True, Command.CLEAR),
        (False, False, None),
    ],
)
def test_command_for(wanted: bool | None, confirmed: bool | None, command: Command | None) -> None:
    assert command_for(wanted, confirmed) is command
