"""Simulated energy meter: energy from power and (accelerated) time. Pure functions."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KWH_DIGITS", "MeterReading", "advance", "cost"]

KWH_DIGITS = 4  # Central keeps 0.0001 kWh


@dataclass(frozen=True)
class MeterReading:
    """Energy after a step, and whether the target was reached (energy capped at it)."""

    kwh: float
    reached: bool


def advance(
    kwh: float, kw: float, real_seconds: float, speed: float, target_kwh: float | None
) -> MeterReading:
    """Add the energy of ``real_seconds`` of wall time at ``kw``, time running ``speed``x.

    Args:
        kwh: energy delivered so far.
        kw: charging power.
        real_seconds: wall-clock time since the last step (negative counts as 0).
        speed: simulated seconds per real second.
        target_kwh: stop at this energy (None: no limit).
    """
    added = kw * max(real_seconds, 0.0) * speed / 3600.0
    total = kwh + added
    reached = target_kwh is not None and total >= target_kwh
    if reached:
        assert target_kwh is not None
        total = max(kwh, target_kwh)
    return MeterReading(round(total, KWH_DIGITS), reached)


def cost(kwh: float, price_eur_kwh: float) -> float:
    """What the energy costs so far, rounded to the cent (for the screen; Central bills)."""
    return round(kwh * price_eur_kwh + 1e-9, 2)
