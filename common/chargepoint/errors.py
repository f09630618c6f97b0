"""Errors shared by the charge-point programs (engine, monitor, OCPP simulator).

EVChargingError
 └── ChargePointError
      ├── PairingKeyError   the site pairing key is missing or malformed
      ├── MenuError         a menu line that is not a command
      ├── RegistryError     the Registry refused or could not be reached; text for the user
      └── SecretMissing     no usable secret file: the CP must register first

The engine adds its own under ``ChargePointError`` (``cp_engine.errors``).
"""

from __future__ import annotations

from common.errors import EVChargingError

__all__ = [
    "ChargePointError",
    "MenuError",
    "PairingKeyError",
    "RegistryError",
    "SecretMissing",
]


class ChargePointError(EVChargingError):
    """Base of the errors raised by the charge-point programs."""


class PairingKeyError(ChargePointError):
    """The pairing key shared by engine and monitor is missing or malformed."""


class MenuError(ChargePointError):
    """A menu line that names no command, or a bad argument; the text says which."""


class RegistryError(ChargePointError):
    """A registration or deregistration that did not happen, and why (one line).

    ``retriable`` is True when trying again later may work (Registry unreachable, busy).
    """

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class SecretMissing(ChargePointError):
    """The secret file is absent or empty; the message tells the user to register."""
