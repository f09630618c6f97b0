"""What each location's readings mean for its alert: a pure state machine with hysteresis.

A location's verdict has a *status* shown to operators (OK, ALERT, UNKNOWN) and the alert
the weather office wants API_Central to hold (``True``/``False``, or ``None`` when it has
no opinion yet). Each reading falls in a band:

    COLD     temperature < 0 °C                 raise the alert
    MILD     0 °C <= temperature <= hysteresis  keep whatever Central holds (no flapping)
    WARM     temperature > hysteresis           clear the alert
    MISSING  the provider failed                keep whatever Central holds (UNKNOWN)

The next wanted alert is one lookup in ``_NEXT_ALERT``. A location seen for the first time
in the MILD band has no opinion (``None``): an alert Central kept from before a restart
stays until the temperature leaves the band, and none is raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "INITIAL",
    "RAISE_BELOW_C",
    "Band",
    "Command",
    "Status",
    "Verdict",
    "band_of",
    "command_for",
    "decide",
]

RAISE_BELOW_C = 0.0
"""An alert is raised strictly below this temperature (°C)."""


class Status(StrEnum):
    OK = "OK"
    ALERT = "ALERT"
    UNKNOWN = "UNKNOWN"


class Band(StrEnum):
    COLD = "cold"
    MILD = "mild"
    WARM = "warm"
    MISSING = "missing"


class Command(StrEnum):
    """What to ask API_Central so that it holds the wanted alert."""

    RAISE = "raise"
    CLEAR = "clear"


@dataclass(frozen=True)
class Verdict:
    """A location's state after a reading.

    Attributes:
        status: what operators see.
        alert: the alert Central should hold; None while the office has no opinion.
    """

    status: Status
    alert: bool | None


INITIAL = Verdict(Status.UNKNOWN, None)

# (wanted alert before, band of the new reading) -> wanted alert after
_NEXT_ALERT: dict[tuple[bool | None, Band], bool | None] = {
    (None, Band.COLD): True,
    (None, Band.MILD): None,
    (None, Band.WARM): False,
    (None, Band.MISSING): None,
    (False, Band.COLD): True,
    (False, Band.MILD): False,
    (False, Band.WARM): False,
    (False, Band.MISSING): False,
    (True, Band.COLD): True,
    (True, Band.MILD): True,
    (True, Band.WARM): False,
    (True, Band.MISSING): True,
}


def band_of(temperature_c: float | None, hysteresis: float) -> Band:
    """Classify a reading (None = the provider failed).

    Raises:
        ValueError: ``hysteresis`` is negative.
    """
    if hysteresis < 0:
        raise ValueError("hysteresis must be 0 or more")
    if temperature_c is None:
        return Band.MISSING
    if temperature_c < RAISE_BELOW_C:
        return Band.COLD
    if temperature_c > RAISE_BELOW_C + hysteresis:
        return Band.WARM
    return Band.MILD


def decide(previous: Verdict, temperature_c: float | None, hysteresis: float) -> Verdict:
    """The verdict after one reading; ``temperature_c`` is None when the provider failed."""
    band = band_of(temperature_c, hysteresis)
    alert = _NEXT_ALERT[(previous.alert, band)]
    if band is Band.MISSING:
        status = Status.UNKNOWN
    elif alert:
        status = Status.ALERT
    else:
        status = Status.OK
    return Verdict(status, alert)


def command_for(wanted: bool | None, confirmed: bool | None) -> Command | None:
    """The request that makes Central hold ``wanted``, or None if nothing is to be sent.

    Args:
        wanted: the verdict's alert (None: no opinion, send nothing).
        confirmed: what Central last confirmed holding (None: not known).
    """
    if wanted is None or wanted == confirmed:
        return None
    return Command.RAISE if wanted else Command.CLEAR
