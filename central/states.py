"""The charge-point state machine: one table, and an illegal transition raises.

Central's truth per DESIGN.md: monitor OK + engine OK -> ACTIVATED; monitor OK +
engine KO -> BROKEN; monitor down -> DISCONNECTED; SUPPLYING while charging;
STOPPED ("Out of Order") while an operator, a weather alert or a key revocation
holds the CP. Callers pick the trigger that matches the facts (for example
``MONITOR_UP_STOPPED`` when a stop is pending for a CP that comes back); the table
decides the state.
"""

from __future__ import annotations

from enum import StrEnum

from common.errors import EVChargingError

__all__ = ["TRANSITIONS", "CPState", "IllegalTransition", "Trigger", "next_state"]


class CPState(StrEnum):
    ACTIVATED = "ACTIVATED"
    SUPPLYING = "SUPPLYING"
    STOPPED = "STOPPED"
    BROKEN = "BROKEN"
    DISCONNECTED = "DISCONNECTED"


class Trigger(StrEnum):
    MONITOR_UP = "monitor_up"  # monitor authenticated, engine healthy, nothing holds the CP
    MONITOR_UP_FAULTY = "monitor_up_faulty"  # monitor authenticated, engine KO
    MONITOR_UP_STOPPED = "monitor_up_stopped"  # monitor authenticated, a stop is pending
    MONITOR_LOST = "monitor_lost"  # connection closed or heartbeat timeout
    ENGINE_FAULT = "engine_fault"
    ENGINE_RECOVERED = "engine_recovered"
    ENGINE_RECOVERED_STOPPED = "engine_recovered_stopped"
    SUPPLY_STARTED = "supply_started"
    SUPPLY_ENDED = "supply_ended"
    SUPPLY_ENDED_STOPPED = "supply_ended_stopped"  # a weather alert waited for the end
    STOP = "stop"  # operator stop, key revocation, weather alert on an idle CP
    RESUME = "resume"  # the last reason holding the CP is gone


class IllegalTransition(EVChargingError):
    """A trigger that the table does not allow in the current state."""

    def __init__(self, state: CPState, trigger: Trigger) -> None:
        super().__init__(f"{trigger} is not allowed in state {state}")
        self.state = state
        self.trigger = trigger


_S = CPState
_T = Trigger

TRANSITIONS: dict[tuple[CPState, Trigger], CPState] = {
    (_S.DISCONNECTED, _T.MONITOR_UP): _S.ACTIVATED,
    (_S.DISCONNECTED, _T.MONITOR_UP_FAULTY): _S.BROKEN,
    (_S.DISCONNECTED, _T.MONITOR_UP_STOPPED): _S.STOPPED,
    (_S.DISCONNECTED, _T.STOP): _S.DISCONNECTED,  # remembered; applied when it returns
    (_S.DISCONNECTED, _T.RESUME): _S.DISCONNECTED,
    (_S.ACTIVATED, _T.SUPPLY_STARTED): _S.SUPPLYING,
    (_S.ACTIVATED, _T.ENGINE_FAULT): _S.BROKEN,
    (_S.ACTIVATED, _T.STOP): _S.STOPPED,
    (_S.ACTIVATED, _T.MONITOR_LOST): _S.DISCONNECTED,
    (_S.SUPPLYING, _T.SUPPLY_ENDED): _S.ACTIVATED,
    (_S.SUPPLYING, _T.SUPPLY_ENDED_STOPPED): _S.STOPPED,
    (_S.SUPPLYING, _T.ENGINE_FAULT): _S.BROKEN,
    (_S.SUPPLYING, _T.STOP): _S.STOPPED,
    (_S.SUPPLYING, _T.MONITOR_LOST): _S.DISCONNECTED,
    (_S.STOPPED, _T.RESUME): _S.ACTIVATED,
    # A monitor re-authenticating after a key revocation (Central kept the CP STOPPED).
    (_S.STOPPED, _T.MONITOR_UP): _S.ACTIVATED,
    (_S.STOPPED, _T.MONITOR_UP_FAULTY): _S.BROKEN,
    (_S.STOPPED, _T.MONITOR_UP_STOPPED): _S.STOPPED,
    (_S.STOPPED, _T.STOP): _S.STOPPED,
    (_S.STOPPED, _T.ENGINE_FAULT): _S.BROKEN,
    (_S.STOPPED, _T.MONITOR_LOST): _S.DISCONNECTED,
    (_S.BROKEN, _T.ENGINE_RECOVERED): _S.ACTIVATED,
    (_S.BROKEN, _T.ENGINE_RECOVERED_STOPPED): _S.STOPPED,
    (_S.BROKEN, _T.ENGINE_FAULT): _S.BROKEN,
    (_S.BROKEN, _T.STOP): _S.BROKEN,  # remembered; applied when the engine recovers
    (_S.BROKEN, _T.RESUME): _S.BROKEN,
    (_S.BROKEN, _T.MONITOR_LOST): _S.DISCONNECTED,
}


def next_state(state: CPState, trigger: Trigger) -> CPState:
    """The state ``trigger`` leads to from ``state``.

    Raises:
        IllegalTransition: the table has no such transition.
    """
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise IllegalTransition(state, trigger) from None
