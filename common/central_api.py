"""The one HTTP client of API_Central: base URL, bearer token, time-outs, errors.

The dashboard, the demo and the weather office call API_Central through
:class:`CentralApiClient`. It owns the URL (``EV_CENTRAL_API``, with or without
``/api``), the bearer token on every call, the time-out, one ``requests.Session`` per
thread, the calls more than one service makes, and the translation of every failure
into the tree below (no ``requests`` exception escapes). A service keeps only its own
routes and its own words: a subclass overrides :meth:`CentralApiClient._error`, or a
caller catches :class:`CentralApiError`.

CentralApiError (common.errors.EVChargingError)    ``method`` and ``path`` of the call
 ├── ApiUnreachable   no answer: refused, unknown host, timed out, lost (retriable)
 ├── ApiStatusError   an error status; ``status``, and ``code``/``message`` from the body
 ├── ApiNotJson       a success whose body is not JSON
 └── NoToken          a write asked of a client without a token (nothing was sent)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

import requests

from common.errors import EVChargingError

__all__ = [
    "ApiNotJson",
    "ApiStatusError",
    "ApiUnreachable",
    "CallOptions",
    "CentralApiClient",
    "CentralApiError",
    "Failure",
    "NoToken",
    "path_segment",
]


class CentralApiError(EVChargingError):
    """API_Central did not do what ``method path`` asked."""

    retriable = False

    def __init__(self, method: str, path: str, message: str) -> None:
        super().__init__(message)
        self.method = method
        self.path = path


class Failure(StrEnum):
    """Why there was no answer at all."""

    TIMEOUT = "timeout"  # connected or not, no answer within the time-out
    REFUSED = "refused"  # nothing listens there
    UNKNOWN_HOST = "unknown_host"
    LOST = "lost"  # another connection failure: reset, TLS...
    OTHER = "other"  # any other failure of the request


_WORDS = {Failure.REFUSED: "connection refused", Failure.UNKNOWN_HOST: "unknown host"}


class ApiUnreachable(CentralApiError):
    """No answer from API_Central at ``base_url``; try again later.

    Args:
        failure: why, as a :class:`Failure`.
        detail: the name of the underlying exception (never its text: that holds URLs).
    """

    retriable = True

    def __init__(
        self,
        method: str,
        path: str,
        *,
        base_url: str,
        timeout: float,
        failure: Failure,
        detail: str,
    ) -> None:
        if failure is Failure.TIMEOUT:
            text = f"API_Central at {base_url} did not answer within {timeout:g} s"
        else:
            text = f"API_Central at {base_url} is unreachable ({_WORDS.get(failure, detail)})"
        super().__init__(method, path, text)
        self.base_url = base_url
        self.failure = failure
        self.detail = detail


class ApiStatusError(CentralApiError):
    """API_Central answered with an error status (or one the caller did not expect).

    Attributes:
        status: the HTTP status.
        code, message: the ``error`` and ``message`` of its JSON body, when it had them.
        reason: the HTTP reason phrase.
    """

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        *,
        code: str | None = None,
        message: str | None = None,
        reason: str = "",
    ) -> None:
        said = f": {message}" if message is not None else ""
        super().__init__(method, path, f"API_Central answered {method} {path} with {status}{said}")
        self.status = status
        self.code = code
        self.message = message
        self.reason = reason
        # A server failure, a time-out or a rate limit: the same call may work later.
        self.retriable = status >= 500 or status in (408, 429)


class ApiNotJson(CentralApiError):
    """A success status whose body is not JSON."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(
            method, path, f"API_Central answered {method} {path} with something that is not JSON"
        )


class NoToken(CentralApiError):
    """A write was asked of a client that has no token; nothing was sent."""

    def __init__(self, method: str, path: str) -> None:
        super().__init__(method, path, f"{method} {path} needs the operator token; none is set")


class CallOptions(TypedDict, total=False):
    """What a call may add to its method and path."""

    params: Mapping[str, Any] | None  # the query string
    body: Any  # sent as JSON unless None
    write: bool  # needs the token (NoToken without one, before anything is sent)
    ok: Collection[int] | None  # the statuses that count as success; default: below 400


def path_segment(value: str) -> str:
    """One URL path segment: ``/`` and friends are escaped, never interpreted."""
    return quote(value, safe="")


class CentralApiClient:
    """Calls API_Central with a bearer token.

    Args:
        base_url: ``EV_CENTRAL_API``, e.g. ``http://127.0.0.1:8001`` (``/api`` optional).
        token: the bearer token sent with every call (the operator's or the weather
            office's); None sends none, and writes raise :class:`NoToken`.
        timeout: seconds for connecting and for each read.
        session_factory: makes the ``requests.Session`` of each thread (a Session is
            not meant to be shared by threads).
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
        self.api_url = f"{self.base_url}/api"
        self.timeout = timeout
        self._token = token
        self._factory = session_factory
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    @property
    def can_write(self) -> bool:
        return self._token is not None

    # ------------------------------------------------- calls more than one service makes
    def chargepoints(self) -> list[dict[str, Any]]:
        """``GET /api/chargepoints`` (driver ids only with the operator token)."""
        return list(self.call_json("GET", "/chargepoints")["chargepoints"])

    def stats(self) -> dict[str, Any]:
        """``GET /api/stats`` (an operator read)."""
        return dict(self.call_json("GET", "/stats"))

    def set_price(self, cp_id: str, price: Decimal | str) -> dict[str, Any]:
        """``PUT /api/chargepoints/<id>/price``."""
        # A string keeps the decimal exact; Central parses it with Decimal.
        body = {"price_eur_kwh": str(price)}
        path = f"/chargepoints/{path_segment(cp_id)}/price"
        return dict(self.call_json("PUT", path, body=body, write=True))

    # ------------------------------------------------------------------------ plumbing
    def call_json(self, method: str, path: str, **options: Unpack[CallOptions]) -> Any:
        """:meth:`call`, then the decoded JSON body."""
        response = self.call(method, path, **options)
        try:
            return response.json()
        except ValueError:
            raise self._error(ApiNotJson(method, path)) from None

    def call(self, method: str, path: str, **options: Unpack[CallOptions]) -> requests.Response:
        """``method /api<path>`` with the token; returns the answer, body read.

        Raises:
            CentralApiError: as :meth:`_error` makes it; by default one of the tree.
        """
        params, body = options.get("params"), options.get("body")
        ok = options.get("ok")
        if options.get("write") and self._token is None:
            raise self._error(NoToken(method, path))
        headers = {"Accept": "application/json"}
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        try:
            response = self._session().request(
                method,
                f"{self.api_url}{path}",
                params=params,
                json=body,
                headers=headers,
                timeout=self.timeout,
            )
        except requests.RequestException as exc:
            unreachable = ApiUnreachable(
                method,
                path,
                base_url=self.base_url,
                timeout=self.timeout,
                failure=_failure(exc),
                detail=type(exc).__name__,
            )
            raise self._error(unreachable) from None
        status = response.status_code
        if (status in ok) if ok is not None else (status < 400):
            return response
        code, message = _error_body(response)
        refused = ApiStatusError(
            method, path, status, code=code, message=message, reason=response.reason or ""
        )
        raise self._error(refused)

    def _error(self, exc: CentralApiError) -> Exception:
        """The exception to raise for ``exc``: a subclass says it in its service's words."""
        return exc

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = self._factory()
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        """Close the sessions of every thread (a later call opens a fresh one)."""
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
            self._local = threading.local()
        for session in sessions:
            session.close()


def _failure(exc: requests.RequestException) -> Failure:
    if isinstance(exc, requests.Timeout):
        return Failure.TIMEOUT
    text = str(exc)
    if "Connection refused" in text:
        return Failure.REFUSED
    if "Name or service not known" in text or "getaddrinfo" in text:
        return Failure.UNKNOWN_HOST
    if isinstance(exc, requests.ConnectionError):
        return Failure.LOST
    return Failure.OTHER


def _error_body(response: requests.Response) -> tuple[str | None, str | None]:
    """``error`` and ``message`` of an error's JSON body, each None if missing."""
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code, message = body.get("error"), body.get("message")
    return (
        code if isinstance(code, str) else None,
        message if isinstance(message, str) else None,
    )
