"""Errors of the monitor (the rest of the charge-point tree is in ``cp_engine.errors``).

ChargePointError
 ├── RegistryError     the Registry refused or could not be reached; text for the user
 └── SecretMissing     no usable secret file: the CP must register first
"""

from __future__ import annotations

from cp_engine.errors import ChargePointError

__all__ = ["RegistryError", "SecretMissing"]


class RegistryError(ChargePointError):
    """A registration or deregistration that did not happen, and why (one line).

    ``retriable`` is True when trying again later may work (Registry unreachable, busy).
    """

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class SecretMissing(ChargePointError):
    """The secret file is absent or empty; the message tells the user to register."""
