"""Errors shared by every service.

EVChargingError
 └── ConfigError      a setting is missing or malformed (exit code 2, one line)
"""

from __future__ import annotations

__all__ = ["ConfigError", "EVChargingError"]


class EVChargingError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(EVChargingError):
    """A setting is missing or malformed.

    Args:
        setting: the flag or environment variable the user must fix.
        message: what is wrong with it, in words a user understands.
    """

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(f"{setting}: {message}")
        self.setting = setting
        self.message = message
