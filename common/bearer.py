"""Bearer tokens on the Flask services: read the ``Authorization`` header, compare, refuse.

Tokens are compared in constant time, and a header that is not a bearer one reads as
an empty token, never as no header: a wrong token is refused, not taken for anonymous.
"""

from __future__ import annotations

import hmac

from flask import request

from common.http import ApiError

__all__ = ["sent_token", "token_matches", "unauthorized"]


def sent_token() -> str | None:
    """The bearer token of this request: None without ``Authorization``, "" if not a bearer."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    return header[7:] if header.startswith("Bearer ") else ""


def token_matches(sent: str | None, expected: str | None) -> bool:
    """True when ``sent`` is ``expected``; an empty or missing token never matches."""
    if not sent or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


def unauthorized(message: str) -> ApiError:
    """The 401 to raise, with ``WWW-Authenticate: Bearer``."""
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})
