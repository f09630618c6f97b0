"""The demo's client of API_Central: charge points, prices, stats, with 3 s time-outs.

The calls and the HTTP plumbing are :class:`common.central_api.CentralApiClient`'s. Every
failure (Central down, restarting, an error status) becomes :class:`ApiUnavailable` with
one line of explanation; the demo shows it and carries on.
"""

from __future__ import annotations

from common.central_api import (
    ApiNotJson,
    ApiStatusError,
    ApiUnreachable,
    CentralApiClient,
    CentralApiError,
)
from common.errors import EVChargingError

__all__ = ["ApiUnavailable", "CentralApi"]


class ApiUnavailable(EVChargingError):
    """API_Central did not answer, or answered with an error."""


class CentralApi(CentralApiClient):
    """API_Central at ``base`` (``http://HOST:PORT/api``) with the operator token.

    Stats are an operator read too (docs/security.md): every call carries the token.
    """

    def __init__(self, base: str, operator_token: str, timeout: float = 3.0) -> None:
        super().__init__(base, operator_token, timeout=timeout)

    def _error(self, exc: CentralApiError) -> Exception:
        if isinstance(exc, ApiUnreachable):
            return ApiUnavailable(f"API_Central unreachable: {exc.detail}")
        if isinstance(exc, ApiStatusError):
            message = exc.message if exc.message is not None else exc.reason
            return ApiUnavailable(f"API_Central {exc.status}: {message}")
        if isinstance(exc, ApiNotJson):
            return ApiUnavailable("API_Central answered something that is not JSON")
        return ApiUnavailable(str(exc))
