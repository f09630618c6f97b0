"""The few API_Central calls the demo makes: charge points, prices, stats.

Every failure (Central down, restarting, an error status) becomes :class:`ApiUnavailable`
with one line of explanation; the demo shows it and carries on.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import requests

from common.errors import EVChargingError

__all__ = ["ApiUnavailable", "CentralApi"]


class ApiUnavailable(EVChargingError):
    """API_Central did not answer, or answered with an error."""


class CentralApi:
    """A small client of API_Central at ``base`` (``http://HOST:PORT/api``)."""

    def __init__(self, base: str, operator_token: str, timeout: float = 3.0) -> None:
        self.base = base.rstrip("/")
        self._timeout = timeout
        self._http = requests.Session()
        # Stats are an operator read too (docs/security.md): every call carries the token.
        self._http.headers["Authorization"] = f"Bearer {operator_token}"

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(
                method, f"{self.base}{path}", timeout=self._timeout, **kwargs
            )
        except requests.RequestException as exc:
            raise ApiUnavailable(f"API_Central unreachable: {type(exc).__name__}") from None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.reason)
            except ValueError:
                message = response.reason
            raise ApiUnavailable(f"API_Central {response.status_code}: {message}")
        try:
            return response.json()
        except ValueError:
            raise ApiUnavailable("API_Central answered something that is not JSON") from None

    def chargepoints(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/chargepoints")["chargepoints"])

    def set_price(self, cp_id: str, price: Decimal) -> None:
        self._call("PUT", f"/chargepoints/{cp_id}/price", json={"price_eur_kwh": str(price)})

    def stats(self) -> dict[str, Any]:
        return dict(self._call("GET", "/stats"))

    def close(self) -> None:
        self._http.close()
