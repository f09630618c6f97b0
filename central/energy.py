"""The energy rule: what an engine may claim a charger delivered, and when it is refused.

Energy only grows, and never exceeds what the most powerful charger of the network
(``max_kw``) could have delivered since the supply started: the elapsed time plus a
tenth, plus :data:`ENERGY_GRACE_S` of full power for telemetry lag and clock skew.
"""

from __future__ import annotations

from decimal import Decimal

from central.errors import InvalidInput
from common.protocol.messages import ErrorCode

__all__ = ["DEFAULT_MAX_KW", "ENERGY_GRACE_S", "check_energy", "energy_bound"]

DEFAULT_MAX_KW = Decimal(350)  # the most powerful DC chargers in service today
ENERGY_GRACE_S = 60


def energy_bound(max_kw: Decimal, elapsed_s: float) -> Decimal:
    """The most energy (kWh) a CP of ``max_kw`` may claim after ``elapsed_s`` of supply."""
    seconds = Decimal(max(0.0, elapsed_s)) * Decimal("1.1") + ENERGY_GRACE_S
    return max_kw * seconds / 3600


def check_energy(
    max_kw: Decimal, last: Decimal, kwh: Decimal, elapsed_s: float, session_id: str
) -> None:
    """Accept ``kwh`` after ``last`` for a supply ``elapsed_s`` old, or refuse it.

    Raises:
        InvalidInput: ``bad_energy``, naming the session.
    """
    if kwh < last:
        raise InvalidInput(
            f"energy may only grow ({kwh} kWh after {last} kWh)",
            code=ErrorCode.BAD_ENERGY,
            session_id=session_id,
        )
    if kwh > energy_bound(max_kw, elapsed_s):
        raise InvalidInput(
            f"{kwh} kWh is more than {max_kw} kW could deliver in {elapsed_s:.0f} s",
            code=ErrorCode.BAD_ENERGY,
            session_id=session_id,
        )
