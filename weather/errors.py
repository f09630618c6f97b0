"""Errors of the weather office.

WeatherError (common.errors.EVChargingError)
 ├── InvalidLocation          a location name Central could not key an alert on
 ├── LocationsFileError       the locations file cannot be edited (does not parse, not writable)
 ├── ProviderError            no temperature for a city; ``kind`` says why, ``reason`` in words
 │    └── RateLimited          the provider answered 429; ``retry_after`` when it said so
 └── CentralError             API_Central did not take a request
      ├── CentralUnavailable   unreachable, timed out or 5xx: try again at the next poll
      └── CentralRejected      a 4xx answer (a wrong token, a refused body): fix the setup

Provider and Central errors never carry the OpenWeather API key: they are built from
status codes and the service's own short messages, not from library exception text
(``requests`` puts the full URL, key included, into its messages).
"""

from __future__ import annotations

from enum import StrEnum

from common.errors import EVChargingError

__all__ = [
    "CentralError",
    "CentralRejected",
    "CentralUnavailable",
    "FailureKind",
    "InvalidLocation",
    "LocationsFileError",
    "ProviderError",
    "RateLimited",
    "WeatherError",
]


class WeatherError(EVChargingError):
    """Base of every error the weather office raises on purpose."""


class InvalidLocation(WeatherError):
    """A location name is empty, too long or has characters Central cannot route."""


class LocationsFileError(WeatherError):
    """The locations file cannot be edited now; the user's file is left as it is."""


class FailureKind(StrEnum):
    """Why a provider has no temperature for a city."""

    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    BAD_KEY = "bad_key"
    UNKNOWN_CITY = "unknown_city"
    RATE_LIMITED = "rate_limited"
    BAD_REQUEST = "bad_request"
    SERVER_ERROR = "server_error"
    MALFORMED = "malformed"
    NO_DATA = "no_data"


class ProviderError(WeatherError):
    """No temperature for a city this time.

    Args:
        kind: the class of failure (shown to operators, used by tests).
        reason: one line for the operator, free of secrets.
    """

    def __init__(self, kind: FailureKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


class RateLimited(ProviderError):
    """The provider's quota is exhausted (HTTP 429).

    Args:
        retry_after: seconds the provider asked us to wait, or None if it did not say.
    """

    def __init__(self, reason: str, retry_after: float | None) -> None:
        super().__init__(FailureKind.RATE_LIMITED, reason)
        self.retry_after = retry_after


class CentralError(WeatherError):
    """API_Central did not take a request."""

    retriable = False


class CentralUnavailable(CentralError):
    """API_Central is unreachable, timed out or failed (5xx); the next poll retries."""

    retriable = True


class CentralRejected(CentralError):
    """API_Central refused the request (4xx): a wrong token or a body it will not take."""
