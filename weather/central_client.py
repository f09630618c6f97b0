"""The weather office's side of API_Central: readings, and raising or clearing alerts."""

from __future__ import annotations

from typing import Any

from common.central_api import ApiStatusError, ApiUnreachable, CentralApiClient, path_segment
from weather.errors import CentralRejected, CentralUnavailable

__all__ = ["CentralClient"]


class CentralClient:
    """Calls API_Central with the weather office's token (``EV_WEATHER_TOKEN``).

    Every method returns once Central confirmed, or raises
    :class:`~weather.errors.CentralUnavailable` (try again later) or
    :class:`~weather.errors.CentralRejected` (a 4xx: the setup is wrong). The HTTP
    plumbing is :class:`common.central_api.CentralApiClient`'s; its operator calls are
    not offered here, the office's token opens these three routes only.

    Args:
        base_url: ``EV_CENTRAL_API``, e.g. ``http://127.0.0.1:8001`` (a trailing ``/api``
            is accepted too).
        token: the weather office's bearer token: Central accepts it on these three
            routes only.
        timeout: seconds for connecting and for each read.
    """

    def __init__(self, base_url: str, token: str, *, timeout: float = 5.0) -> None:
        self._api = CentralApiClient(base_url, token, timeout=timeout)
        self.base_url = self._api.base_url

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
        self._call("DELETE", f"/weather/alerts/{path_segment(location)}", None, ok=(200, 404))

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
        try:
            self._api.call(method, path, body=body, ok=ok)
        except ApiUnreachable as exc:
            # "API_Central at URL is unreachable (connection refused)": operators grep it.
            raise CentralUnavailable(str(exc)) from None
        except ApiStatusError as exc:
            said = f"{exc.status}: {exc.message[:160]}" if exc.message is not None else exc.status
            if exc.retriable:
                raise CentralUnavailable(f"API_Central failed {method} {path} ({said})") from None
            raise CentralRejected(f"API_Central refused {method} {path} ({said})") from None
