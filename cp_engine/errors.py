"""Errors of the charge-point packages (engine and monitor share this tree).

EVChargingError
 └── ChargePointError
      ├── IllegalSupplyTransition   an event the supply table does not allow
      ├── JournalError              the metering journal cannot be read or written
      ├── PairingKeyError           the site pairing key is missing or malformed
      └── MenuError                 a menu line that is not a command
"""

from __future__ import annotations

from common.errors import EVChargingError

__all__ = [
    "ChargePointError",
    "IllegalSupplyTransition",
    "JournalError",
    "MenuError",
    "PairingKeyError",
]


class ChargePointError(EVChargingError):
    """Base of the errors raised by ``cp_engine`` and ``cp_monitor``."""


class IllegalSupplyTransition(ChargePointError):
    """The supply state machine has no transition for this (state, event)."""

    def __init__(self, state: str, event: str) -> None:
        super().__init__(f"{event} is not allowed while {state}")
        self.state = state
        self.event = event


class JournalError(ChargePointError):
    """The journal file cannot be read or written (disk full, permissions...)."""


class PairingKeyError(ChargePointError):
    """The pairing key shared by engine and monitor is missing or malformed."""


class MenuError(ChargePointError):
    """A menu line that names no command, or a bad argument; the text says which."""
