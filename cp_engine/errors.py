"""Errors of the engine (the tree they hang from is ``common.chargepoint.errors``).

ChargePointError
 ├── IllegalSupplyTransition   an event the supply table does not allow
 └── JournalError              the metering journal cannot be read or written
"""

from __future__ import annotations

from common.chargepoint.errors import ChargePointError

__all__ = ["IllegalSupplyTransition", "JournalError"]


class IllegalSupplyTransition(ChargePointError):
    """The supply state machine has no transition for this (state, event)."""

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"{event} is not allowed while {state}")
        self.state = state
        self.event = event


class JournalError(ChargePointError):
    """The journal file cannot be read or written (disk full, permissions...)."""
