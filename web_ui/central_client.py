"""The dashboard's side of API_Central: reads for the pages, operator commands for the forms.

The HTTP plumbing is :class:`common.central_api.CentralApiClient`'s. Each method returns
the decoded JSON, or raises :class:`~web_ui.errors.UpstreamUnavailable` (Central did not
answer) or :class:`~web_ui.errors.UpstreamRejected` (it said no).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from common.central_api import (
    ApiNotJson,
    ApiStatusError,
    ApiUnreachable,
    CentralApiClient,
    CentralApiError,
    Failure,
    NoToken,
    path_segment,
)
from web_ui.errors import UpstreamRejected, UpstreamUnavailable

__all__ = ["CentralClient"]

SERVICE = "Central"

_WHY = {
    Failure.TIMEOUT: "no answer in time",
    Failure.REFUSED: "connection refused or lost",
    Failure.UNKNOWN_HOST: "connection refused or lost",
    Failure.LOST: "connection refused or lost",
}


class CentralClient(CentralApiClient):
    """Calls API_Central with the operator token, which never leaves this server.

    Every call carries the token when there is one: API_Central's private reads
    (sessions, drivers, stats, audit, driver ids on charge points) need it too. Without
    one the dashboard gets the public read model and no operator area. Arguments as
    :class:`~common.central_api.CentralApiClient`'s (``token``: the operator's, or None
    for reads only).
    """

    # ----------------------------------------------------------------- reads
    # chargepoints() and stats() are the common client's.
    def health(self) -> dict[str, Any]:
        return self.call_json("GET", "/health")

    def drivers(self) -> list[dict[str, Any]]:
        return list(self.call_json("GET", "/drivers")["drivers"])

    def weather(self) -> dict[str, Any]:
        return self.call_json("GET", "/weather")

    def sessions(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """``GET /api/sessions`` with ``status``, ``cp_id``, ``driver_id``, ``limit``."""
        return list(self.call_json("GET", "/sessions", params=_clean(filters))["sessions"])

    def audit(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``GET /api/audit``: ``entries``, ``total`` and the ``chain`` check."""
        return self.call_json("GET", "/audit", params=_clean(filters))

    def audit_csv(self, filters: Mapping[str, Any] | None = None) -> bytes:
        return self.call("GET", "/audit.csv", params=_clean(filters)).content

    # ----------------------------------------------------------------- writes
    # set_price() is the common client's.
    def stop(self, cp_id: str | None) -> dict[str, Any]:
        """Stop one CP, or every CP when ``cp_id`` is None."""
        if cp_id is None:
            return self._write("POST", "/chargepoints/stop-all")
        return self._write("POST", f"/chargepoints/{path_segment(cp_id)}/stop")

    def resume(self, cp_id: str | None) -> dict[str, Any]:
        if cp_id is None:
            return self._write("POST", "/chargepoints/resume-all")
        return self._write("POST", f"/chargepoints/{path_segment(cp_id)}/resume")

    def revoke_key(self, cp_id: str) -> dict[str, Any]:
        return self._write("POST", f"/chargepoints/{path_segment(cp_id)}/revoke-key")

    def clear_alert(self, location: str) -> dict[str, Any]:
        return self._write("DELETE", f"/weather/alerts/{path_segment(location)}")

    # ----------------------------------------------------------------- plumbing
    def _write(self, method: str, path: str) -> dict[str, Any]:
        return self.call_json(method, path, write=True)

    def _error(self, exc: CentralApiError) -> Exception:
        """Central's failures in the dashboard's words (the pages show them)."""
        if isinstance(exc, ApiUnreachable):
            return UpstreamUnavailable(SERVICE, _WHY.get(exc.failure, exc.detail))
        if isinstance(exc, ApiNotJson):
            return UpstreamUnavailable(SERVICE, f"{exc.path} did not answer with JSON")
        if isinstance(exc, NoToken):
            return UpstreamRejected(SERVICE, 401, "unauthorized", "no operator token set")
        if isinstance(exc, ApiStatusError):
            if exc.status >= 500:
                return UpstreamUnavailable(SERVICE, f"HTTP {exc.status} from {exc.path}")
            message = exc.message if exc.message is not None else exc.reason
            return UpstreamRejected(
                SERVICE, exc.status, exc.code or "error", message or f"HTTP {exc.status}"
            )
        return exc


def _clean(filters: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (filters or {}).items() if v not in (None, "")}
