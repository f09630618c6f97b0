"""Errors of the web dashboard.

EVChargingError
 └── WebError                 base of everything below
      ├── UpstreamUnavailable  Central or the Registry did not answer (retriable)
      └── UpstreamRejected     it answered with an error (status, code, message)
"""

from __future__ import annotations

from common.errors import EVChargingError

__all__ = ["UpstreamRejected", "UpstreamUnavailable", "WebError"]


class WebError(EVChargingError):
    """Base of the dashboard's errors."""


class UpstreamUnavailable(WebError):
    """``service`` could not be reached or did not answer in time; try again later."""

    retriable = True

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service} is unavailable: {message}")
        self.service = service
        self.message = message


class UpstreamRejected(WebError):
    """``service`` answered with an error: ``status``, its ``code`` and ``message``."""

    retriable = False

    def __init__(self, service: str, status: int, code: str, message: str) -> None:
        super().__init__(f"{service} refused ({status} {code}): {message}")
        self.service = service
        self.status = status
        self.code = code
        self.message = message
