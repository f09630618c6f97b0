"""Central's errors: one tree, each error with a stable wire code and an HTTP status.

    EVChargingError
     └── CentralError        .code (an ErrorCode), .status, .message, .session_id
          ├── InvalidInput   400  bad_message, invalid_value, bad_energy
          ├── Forbidden      403  forbidden, not_allowed
          ├── NotFound       404  unknown_cp, unknown_session, no_alert
          └── Conflict       409  cp_busy, cp_unavailable, driver_busy, no_session,
                                  engine_refused, not_supplying

A login Central delays (``throttled``, 429) is refused in the handshake, before any of
these can arise: see :mod:`central.throttle`.

The same error reaches a peer as an ``error`` frame ``{"code", "reason", "session_id"?}``
(:func:`central.routing.dispatch`) and an operator as ``{"error": code, "message"}`` with
``status`` (:mod:`central.api.routes`). Peers react to the code, never to the wording.
"""

from __future__ import annotations

from common.errors import EVChargingError
from common.protocol.messages import ErrorBody, ErrorCode

__all__ = [
    "CentralError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
]


class CentralError(EVChargingError):
    """A request or message Central refuses; nothing was changed.

    Args:
        message: what a person reads (logs, the peer's screen, the API's ``message``).
        code: the stable machine code; defaults to the class's.
        session_id: the session the refusal is about, when there is one (peers match
            their own records on it).
    """

    status = 500
    default_code = ErrorCode.INTERNAL

    def __init__(
        self, message: str, *, code: ErrorCode | None = None, session_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.code = code or self.default_code
        self.message = message
        self.session_id = session_id

    def body(self) -> ErrorBody:
        """The ``error`` frame a peer receives."""
        return ErrorBody(self.code, self.message, self.session_id)


class InvalidInput(CentralError):
    """A field is malformed or out of range (a peer's body, an operator's value)."""

    status = 400
    default_code = ErrorCode.INVALID_VALUE


class Forbidden(CentralError):
    """The peer is authenticated but this is not its to do (another CP's, a driver's)."""

    status = 403
    default_code = ErrorCode.FORBIDDEN


class NotFound(CentralError):
    """No such charge point, session (of this CP) or alert."""

    status = 404
    default_code = ErrorCode.UNKNOWN_CP


class Conflict(CentralError):
    """The object exists but its state does not allow this now."""

    status = 409
    default_code = ErrorCode.CP_UNAVAILABLE
