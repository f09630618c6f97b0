"""The weather office's side of API_Central: readings, and raising or clearing alerts."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import requests

from weather.errors import CentralRejected, CentralUnavailable

__all__ = ["CentralClient"]


class CentralClient:
    """Calls API_Central with the weather office's token (``EV_WEATHER_TOKEN``).

    Every method returns once Central confirmed, or raises
    :class:`~weather.errors.CentralUnavailable` (try again later) or
    :class:`~weather.errors.CentralRejected` (a 4xx: the setup is wrong).

    Args:
        base_url: ``EV_CENTRAL_API``, e.g. ``http://127.0.0.1:8001`` (a trailing ``/api``
            is accepted too).
        token: the weather office's bearer token: Central accepts it on these three
            routes only.
        timeout: seconds for connecting and for each read.
        session: a ``requests.Session`` (one is made if omitted).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 5.0,
        session: requests.Session | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        self.base_url = base.removesuffix("/api")
        self._api = f"{self.base_url}/api"
        self._timeout = timeout
        self._session = session or requests.Session()
        self._headers = {"Authorization": f"Bearer {token}"}

    def raise_alert(self, location: str, temperature_c: float | None) -> None:
        """``POST /api/weather/alerts`` (idempotent at Central: raising twice is harmless)."""
        self._call(
            "POST",
            "/weather/alerts",
            {"location": location, "temperature_c": temperature_c},
            ok=(200, 201),
        )

    def clear_alert(self, location: str) -> None:
        """``DELETE /api/weather/alerts/<location>``; 404 (no alert) counts as cleared."""
        self._call("DELETE", f"/weather/alerts/{quote(location, safe='')}", None, ok=(200, 404))

    def post_reading(
        self, location: str, temperature_c: float | None, status: str, reason: str | None
    ) -> None:
        """``POST /api/weather/readings``: ``status`` "ok", or "UNKNOWN" with no temperature."""
        body: dict[str, Any] = {
            "location": location,
            "temperature_c": temperature_c,
            "status": status,
        }
        if reason:
            body["reason"] = reason
        self._call("POST", "/weather/readings", body, ok=(200, 201, 202))

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None, ok: tuple[int, ...]
    ) -> None:
        url = f"{self._api}{path}"
        try:
            response = self._session.request(
                method, url, json=body, headers=self._headers, timeout=self._timeout
            )
        except requests.Timeout:
            raise CentralUnavailable(
                f"API_Central at {self.base_url} did not answer within {self._timeout:g} s"
            ) from None
        except requests.RequestException as exc:
            raise CentralUnavailable(
                f"API_Central at {self.base_url} is unreachable ({_why(exc)})"
            ) from None
        with response:
            if response.status_code in ok:
                return
            said = _error_message(response)
            if response.status_code >= 500 or response.status_code in (408, 429):
                raise CentralUnavailable(
                    f"API_Central failed {method} {path} ({response.status_code}{said})"
                )
            raise CentralRejected(
                f"API_Central refused {method} {path} ({response.status_code}{said})"
            )


def _why(exc: requests.RequestException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "getaddrinfo" in text:
        return "unknown host"
    return type(exc).__name__


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return f": {body['message'][:160]}"
    return ""
