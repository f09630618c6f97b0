"""The engine's supply state machine: one table; an illegal transition raises.

IDLE --authorize--> AUTHORIZED --plug--> SUPPLYING
AUTHORIZED --stop | fault--> IDLE          (authorisation withdrawn)
SUPPLYING --unplug | target_reached | stop | fault | shutdown--> IDLE
"""

from __future__ import annotations

from enum import StrEnum

from cp_engine.errors import IllegalSupplyTransition

__all__ = ["TRANSITIONS", "SupplyEvent", "SupplyState", "next_state"]


class SupplyState(StrEnum):
    IDLE = "IDLE"
    AUTHORIZED = "AUTHORIZED"  # Central authorised a session; waiting for the vehicle
    SUPPLYING = "SUPPLYING"


class SupplyEvent(StrEnum):
    AUTHORIZE = "authorize"
    PLUG = "plug"
    UNPLUG = "unplug"
    TARGET_REACHED = "target_reached"
    STOP = "stop"  # Central said stop (operator, fault seen by Central, expiry...)
    FAULT = "fault"  # this engine went KO
    SHUTDOWN = "shutdown"  # the engine is quitting


_S = SupplyState
_E = SupplyEvent

TRANSITIONS: dict[tuple[SupplyState, SupplyEvent], SupplyState] = {
    (_S.IDLE, _E.AUTHORIZE): _S.AUTHORIZED,
    (_S.AUTHORIZED, _E.PLUG): _S.SUPPLYING,
    (_S.AUTHORIZED, _E.STOP): _S.IDLE,
    (_S.AUTHORIZED, _E.FAULT): _S.IDLE,
    (_S.AUTHORIZED, _E.SHUTDOWN): _S.IDLE,
    (_S.SUPPLYING, _E.UNPLUG): _S.IDLE,
    (_S.SUPPLYING, _E.TARGET_REACHED): _S.IDLE,
    (_S.SUPPLYING, _E.STOP): _S.IDLE,
    (_S.SUPPLYING, _E.FAULT): _S.IDLE,
    (_S.SUPPLYING, _E.SHUTDOWN): _S.IDLE,
}


def next_state(state: SupplyState, event: SupplyEvent) -> SupplyState:
    """The state ``event`` leads to from ``state``.

    Raises:
        IllegalSupplyTransition: the table has no such transition.
    """
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalSupplyTransition(str(state), str(event)) from None
