"""Operator sessions, CSRF tokens and login throttling.

The operator token stays on the server: a browser that logged in holds only Flask's
signed session cookie (``HttpOnly``, ``SameSite=Strict``), which carries a random
session id and the session's CSRF token. The cookie is an operator's only while the
server's :class:`OperatorSessions` holds that id: logging out removes it, so a copy of
the cookie (kept by an attacker, or by a browser that missed the logout) is worth
nothing afterwards. A signed cookie alone would stay valid until it expired.
Every POST must send the CSRF token back in a form field (or the ``X-CSRF-Token``
header), so another site cannot make a logged-in browser act.
"""

from __future__ import annotations

import functools
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import abort, redirect, request, session, url_for

from common.bearer import token_matches
from common.http import app_extension

__all__ = [
    "LoginThrottle",
    "OperatorSessions",
    "check_csrf",
    "csrf_token",
    "is_operator",
    "log_in",
    "log_out",
    "operator_required",
    "safe_next",
]

F = TypeVar("F", bound=Callable[..., Any])

_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def csrf_token() -> str:
    """This browser session's CSRF token (made on first use)."""
    token = session.get("csrf")
    if not isinstance(token, str) or not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse (400) an unsafe request without this session's CSRF token."""
    if request.method not in _UNSAFE:
        return
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf")
    if not isinstance(expected, str) or not token_matches(sent, expected):
        abort(400, "The form expired or did not come from this site; reload and try again.")


def _sessions() -> OperatorSessions:
    return app_extension("ev_web.sessions", OperatorSessions)


def is_operator() -> bool:
    sid = session.get("sid")
    return isinstance(sid, str) and _sessions().valid(sid)


def log_in() -> None:
    """Start an operator session: a fresh id known to the server, a fresh CSRF token."""
    session.clear()
    session["sid"] = _sessions().start()
    session["csrf"] = secrets.token_urlsafe(32)
    session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME


def log_out() -> None:
    """End the session on the server (the cookie's copies die with it) and in the browser."""
    sid = session.get("sid")
    if isinstance(sid, str):
        _sessions().end(sid)
    session.clear()


def operator_required(view: F) -> F:
    """Send a visitor who is not logged in to the login page (and back afterwards)."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not is_operator():
            if request.method in _UNSAFE:
                abort(403, "Log in as the operator first.")
            return redirect(url_for("operator.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return cast(F, wrapped)


def safe_next(target: str | None, default: str) -> str:
    """``target`` if it is a path on this site, else ``default`` (no open redirects)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return default
    if "\\" in target:
        return default
    return target


class LoginThrottle:
    """At most ``limit`` failed logins per client address in ``window`` seconds.

    Args:
        limit: failures allowed in the window.
        window: seconds a failure counts.
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self, limit: int = 5, window: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, key: str) -> float:
        """Seconds until ``key`` may try again (0: now)."""
        with self._lock:
            now = self._clock()
            times = self._recent(key, now)
            if len(times) < self.limit:
                if not times:
                    self._failures.pop(key, None)
                return 0.0
            return max(0.0, times[0] + self.window - now)

    def failed(self, key: str) -> None:
        with self._lock:
            now = self._clock()
            self._recent(key, now).append(now)
            if len(self._failures) > 10_000:  # bound the memory an attacker can take
                oldest = min(self._failures, key=lambda k: self._failures[k][-1])
                del self._failures[oldest]

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


class OperatorSessions:
    """The operator sessions this server has started and not ended.

    Kept in memory: a restart (for instance to change the operator token) ends every
    session, and several web processes behind one address would each know only their
    own (sticky sessions needed; a shared store is not built).

    Args:
        lifetime: seconds a session lasts (the cookie's own lifetime).
        limit: sessions kept at most; past it the oldest is dropped (bounds memory
            against a script that logs in again and again).
        clock: monotonic seconds (tests pass a fake).
    """

    def __init__(
        self,
        lifetime: float,
        limit: int = 1_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lifetime = lifetime
        self.limit = limit
        self._clock = clock
        self._expiry: dict[str, float] = {}  # insertion order: oldest first
        self._lock = threading.Lock()

    def start(self) -> str:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            now = self._clock()
            for old in [k for k, due in self._expiry.items() if due <= now]:
                del self._expiry[old]
            while len(self._expiry) >= self.limit:
                del self._expiry[next(iter(self._expiry))]
            self._expiry[sid] = now + self.lifetime
        return sid

    def valid(self, sid: str) -> bool:
        with self._lock:
            due = self._expiry.get(sid)
            if due is None:
                return False
            if due <= self._clock():
                del self._expiry[sid]
                return False
            return True

    def end(self, sid: str) -> None:
        with self._lock:
            self._expiry.pop(sid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)
