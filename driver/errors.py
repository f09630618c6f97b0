"""What can end a driver command early, each with the exit code it maps to.

EVChargingError
 └── DriverError           exit 1: the command could not do what was asked
      ├── CentralDown      exit 3: Central unreachable within --retry-for, or lost for good
      ├── NotAuthenticated exit 4: Central refused this driver's id or secret
      └── GaveUp           exit 5: waited longer than a cap (--plug-wait, an answer)

Configuration and usage errors (a missing --id, an unreadable service file) are
:class:`common.errors.ConfigError`: one line on stderr and exit 2.
"""

from __future__ import annotations

from common.errors import EVChargingError

__all__ = [
    "EXIT_CENTRAL_DOWN",
    "EXIT_DENIED",
    "EXIT_GAVE_UP",
    "EXIT_NOT_AUTHENTICATED",
    "EXIT_OK",
    "EXIT_USAGE",
    "CentralDown",
    "DriverError",
    "GaveUp",
    "NotAuthenticated",
]

EXIT_OK = 0
EXIT_DENIED = 1  # a request denied, or a charge that ended without a ticket
EXIT_USAGE = 2  # bad flags, missing secret, unreadable service file (common.config)
EXIT_CENTRAL_DOWN = 3
EXIT_NOT_AUTHENTICATED = 4
EXIT_GAVE_UP = 5


class DriverError(EVChargingError):
    """A driver command ended early; ``str(error)`` is the line the user reads."""

    exit_code = EXIT_DENIED


class CentralDown(DriverError):
    """Central could not be reached within the retry budget."""

    exit_code = EXIT_CENTRAL_DOWN


class NotAuthenticated(DriverError):
    """Central refused the driver's credentials (wrong secret, unknown or disabled id)."""

    exit_code = EXIT_NOT_AUTHENTICATED


class GaveUp(DriverError):
    """A wait passed its cap before Central said how things ended."""

    exit_code = EXIT_GAVE_UP
