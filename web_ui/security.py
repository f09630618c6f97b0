"""Operator sessions, CSRF tokens and login throttling.

The operator token stays on the server: a browser that logged in holds only Flask's
signed session cookie (``HttpOnly``, ``SameSite=Strict``), which says "operator" and
carries the session's CSRF token. Every POST must send that token back in a form field
(or the ``X-CSRF-Token`` header), so another site cannot make a logged-in browser act.
"""

from __future__ import annotations

import functools
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import abort, redirect, request, session, url_for

__all__ = [
    "LoginThrottle",
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
    if not isinstance(expected, str) or not hmac.compare_digest(sent, expected):
        abort(400, "The form expired or did not come from this site; reload and try again.")


def is_operator() -> bool:
    return session.get("operator") is True


def log_in() -> None:
    """Start an operator session: a fresh cookie and a fresh CSRF token."""
    session.clear()
    session["operator"] = True
    session["csrf"] = secrets.token_urlsafe(32)
    session.permanent = True  # expires after PERMANENT_SESSION_LIFETIME


def log_out() -> None:
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
