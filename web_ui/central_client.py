"""The dashboard's side of API_Central: reads for the pages, operator commands for the forms.

Each method returns the decoded JSON, or raises :class:`~web_ui.errors.UpstreamUnavailable`
(Central did not answer) or :class:`~web_ui.errors.UpstreamRejected` (it said no).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

import requests

from web_ui.errors import UpstreamRejected, UpstreamUnavailable

__all__ = ["CentralClient"]

SERVICE = "Central"


class CentralClient:
    """Calls API_Central with the operator token, which never leaves this server.

    Every call carries the token when there is one: API_Central's private reads
    (sessions, drivers, stats, audit, driver ids on charge points) need it too. Without
    one the dashboard gets the public read model and no operator area.

    Args:
        base_url: ``EV_CENTRAL_API``, e.g. ``http://127.0.0.1:8001`` (``/api`` optional).
        token: the operator bearer token (None: reads only).
        timeout: seconds for connecting and for each read.
        session_factory: makes the ``requests.Session`` of each thread.
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 5.0,
        session_factory: Callable[[], requests.Session] = requests.Session,
    ) -> None:
        self.base_url = base_url.rstrip("/").removesuffix("/api")
        self._api = f"{self.base_url}/api"
        self._token = token
        self._timeout = timeout
        self._factory = session_factory
        self._local = threading.local()  # a Session is not meant to be shared by threads

    @property
    def can_write(self) -> bool:
        return self._token is not None

    # ----------------------------------------------------------------- reads
    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    def chargepoints(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/chargepoints")["chargepoints"])

    def drivers(self) -> list[dict[str, Any]]:
        return list(self._json("GET", "/drivers")["drivers"])

    def weather(self) -> dict[str, Any]:
        return self._json("GET", "/weather")

    def stats(self) -> dict[str, Any]:
        return self._json("GET", "/stats")

    def sessions(self, filters: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """``GET /api/sessions`` with ``status``, ``cp_id``, ``driver_id``, ``limit``."""
        return list(self._json("GET", "/sessions", params=_clean(filters))["sessions"])

    def audit(self, filters: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``GET /api/audit``: ``entries``, ``total`` and the ``chain`` check."""
        return self._json("GET", "/audit", params=_clean(filters))

    def audit_csv(self, filters: Mapping[str, Any] | None = None) -> bytes:
        return self._call("GET", "/audit.csv", params=_clean(filters)).content

    # ----------------------------------------------------------------- writes
    def stop(self, cp_id: str | None) -> dict[str, Any]:
        """Stop one CP, or every CP when ``cp_id`` is None."""
        if cp_id is None:
            return self._json("POST", "/chargepoints/stop-all", write=True)
        return self._json("POST", f"/chargepoints/{_seg(cp_id)}/stop", write=True)

    def resume(self, cp_id: str | None) -> dict[str, Any]:
        if cp_id is None:
            return self._json("POST", "/chargepoints/resume-all", write=True)
        return self._json("POST", f"/chargepoints/{_seg(cp_id)}/resume", write=True)

    def revoke_key(self, cp_id: str) -> dict[str, Any]:
        return self._json("POST", f"/chargepoints/{_seg(cp_id)}/revoke-key", write=True)

    def set_price(self, cp_id: str, price: str) -> dict[str, Any]:
        # A string keeps the decimal exact; Central parses it with Decimal.
        body = {"price_eur_kwh": price}
        return self._json("PUT", f"/chargepoints/{_seg(cp_id)}/price", body=body, write=True)

    def clear_alert(self, location: str) -> dict[str, Any]:
        return self._json("DELETE", f"/weather/alerts/{_seg(location)}", write=True)

    # ----------------------------------------------------------------- plumbing
    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._factory()
        return session

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        write: bool = False,
    ) -> Any:
        response = self._call(method, path, params=params, body=body, write=write)
        try:
            return response.json()
        except ValueError:
            raise UpstreamUnavailable(SERVICE, f"{path} did not answer with JSON") from None

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        write: bool = False,
    ) -> requests.Response:
        headers = {"Accept": "application/json"}
        if write and self._token is None:
            raise UpstreamRejected(SERVICE, 401, "unauthorized", "no operator token set")
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self._session().request(
                method,
                f"{self._api}{path}",
                params=params,
                json=body,
                headers=headers,
                timeout=self._timeout,
            )
        except requests.RequestException as exc:
            raise UpstreamUnavailable(SERVICE, _why(exc)) from None
        if response.status_code >= 500:
            raise UpstreamUnavailable(SERVICE, f"HTTP {response.status_code} from {path}")
        if response.status_code >= 400:
            code, message = _error_of(response)
            raise UpstreamRejected(SERVICE, response.status_code, code, message)
        return response


def _seg(value: str) -> str:
    """One URL path segment: ``/`` and friends are escaped, never interpreted."""
    return quote(value, safe="")


def _clean(filters: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (filters or {}).items() if v not in (None, "")}


def _error_of(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
        return str(body.get("error", "error")), str(body.get("message", response.reason))
    except (ValueError, AttributeError):
        return "error", response.reason or f"HTTP {response.status_code}"


def _why(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or lost"
    return type(exc).__name__
