"""OCPP-J 1.6 frames on one WebSocket, answered: schemas, the 1.6 CallErrors, a rate.

:class:`Wire` is the ``ocpp`` package's :class:`ocpp.v16.ChargePoint` (its ``@on``
routing, payload classes and ``call``) with a loop of its own for incoming frames,
because the package's answers 2.0.1's ``FormatViolation`` to a 1.6 peer, says nothing
to a call it cannot unpack, and logs every peer error as a traceback. Here:

- every call gets an answer: the handler's result, or the CallError OCPP-J 1.6 (§4.2.3,
  errata spelling) names for what is wrong (:func:`central.ocpp.mapping.call_error`);
  a frame that is not JSON has no id to answer and is dropped;
- answers (CallResult, CallError) go to the waiting ``call``, and are dropped when no
  call waits, so they cannot pile up;
- every frame counts against a token bucket; over it a call is answered GenericError
  and anything else dropped; :data:`MAX_THROTTLED` refusals in a row close the socket;
- the package's own log lines go to DEBUG, and nothing a peer sends leaves a traceback.

Subclasses add ``@on`` handlers, and say how to :meth:`Wire.audit` and :meth:`Wire.close`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.charge_point import camel_to_snake_case, remove_nones, serialize_as_dict
from ocpp.charge_point import snake_to_camel_case as to_camel
from ocpp.exceptions import (
    FormationViolationError,
    GenericError,
    InternalError,
    NotSupportedError,
    OCPPError,
)
from ocpp.exceptions import (
    NotImplementedError as OcppNotImplemented,
)
from ocpp.messages import CallError, CallResult, get_validator
from ocpp.messages import MessageType as OcppType
from ocpp.v16 import ChargePoint
from ocpp.v16.enums import Action

from central.ocpp.mapping import call_error

__all__ = ["MAX_THROTTLED", "RateLimit", "Wire"]

log = logging.getLogger(__name__)

MAX_THROTTLED = 500  # frames in a row over the rate before the connection is closed
_ACTIONS = frozenset(str(a) for a in Action)


class RateLimit:
    """A token bucket: ``rate`` calls a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        self.rate, self.burst, self._clock = rate, burst, clock
        self._tokens, self._at = float(burst), clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class _WireLog:
    """The ``ocpp`` package's logger, quieter: messages at DEBUG, no tracebacks for peers."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger

    def info(self, msg: str, *args: Any, **kw: Any) -> None:
        self._log.debug(msg, *args)

    debug = info

    def warning(self, msg: str, *args: Any, **kw: Any) -> None:
        self._log.info(msg, *args)

    error = exception = warning


class Wire(ChargePoint):
    """One OCPP 1.6J peer's frames.

    Args:
        cp_id: the peer's charge box id.
        connection: the WebSocket (async ``send``, ``recv``, ``close``).
        rate: frames a second allowed (bursts of ``10 * rate``).
        response_timeout: how long ``call`` waits for the peer's answer.
    """

    def __init__(
        self, cp_id: str, connection: Any, *, rate: float = 10.0, response_timeout: float = 30
    ) -> None:
        super().__init__(cp_id, connection, response_timeout=response_timeout, logger=_WireLog(log))
        self._limit = RateLimit(rate, int(rate * 10))
        self.throttled = 0  # frames refused for flooding, on this connection
        self._refused_in_row = 0

    def audit(self, reason: str) -> None:
        """Record something the peer did wrong (subclasses put it in the audit log)."""
        log.warning(reason, extra={"fields": {"cp_id": self.id}})

    def close(self, reason: str) -> None:
        """Close the connection (subclasses say who is told)."""
        self._closing = asyncio.ensure_future(self._connection.close(1008, reason[:120]))

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Answer every call (a CallError for anything wrong), pass answers to ``call``.

        Every frame counts against the rate limit; beyond it a call is answered
        GenericError and anything else is dropped, and a charger that keeps flooding is
        disconnected.
        """
        allowed = self._limit.take()
        if allowed:
            self._refused_in_row = 0
        elif self._flooded():
            return
        try:
            msg = json.loads(raw_msg)
        except (ValueError, TypeError, RecursionError):
            log.info("not JSON; ignored", extra={"fields": {"cp_id": self.id}})
            return
        if not isinstance(msg, list) or not msg or msg[0] not in (2, 3, 4):
            unique_id = msg[1] if isinstance(msg, list) and len(msg) > 1 else None
            if isinstance(unique_id, str) and allowed:
                cause = "expected [2, id, action, payload], [3, ...] or [4, ...]"
                await self._reply_error(
                    unique_id[:36], FormationViolationError(details={"cause": cause})
                )
            return
        if msg[0] == OcppType.Call:
            await self._handle(msg, allowed)
        elif not allowed or not self._call_lock.locked():
            return  # an answer nobody is waiting for: dropped, so it cannot pile up
        elif msg[0] == OcppType.CallResult and len(msg) == 3:
            self._response_queue.put_nowait(CallResult(msg[1], msg[2]))
        elif msg[0] == OcppType.CallError and len(msg) == 5:
            self._response_queue.put_nowait(CallError(*msg[1:]))

    def _flooded(self) -> bool:
        """Count a frame over the rate; True if the connection is closed for it."""
        self.throttled += 1
        self._refused_in_row += 1
        if self._refused_in_row >= MAX_THROTTLED:
            self.audit(f"call flood: {self._refused_in_row} frames in a row over the rate")
            self.close("too many calls")
            return True
        if math.log10(self.throttled).is_integer():  # 1, 10, 100... refused: audited
            self.audit(f"call flood: {self.throttled} frames refused")
        return False

    async def _handle(self, msg: list[Any], allowed: bool) -> None:
        if len(msg) != 4 or not isinstance(msg[1], str) or not 0 < len(msg[1]) <= 36:
            unique_id = msg[1] if len(msg) > 1 and isinstance(msg[1], str) else ""
            await self._reply_error(
                unique_id[:36],
                FormationViolationError(
                    details={"cause": "a call is [2, unique id (1-36 characters), action, payload]"}
                ),
            )
            return
        _, unique_id, action, payload = msg
        if not allowed:
            await self._reply_error(
                unique_id,
                GenericError(
                    description="too many calls; slow down",
                    details={"cause": f"at most {self._limit.rate:g} calls a second"},
                ),
            )
            return
        try:
            result = await self._answer_call(action, payload)
        except OCPPError as exc:
            log.info(
                "call refused",
                extra={"fields": {"cp_id": self.id, "action": action, "error": exc.code}},
            )
            await self._reply_error(unique_id, exc)
            return
        except Exception:
            log.exception("handling %s from %s failed", action, self.id)
            await self._reply_error(unique_id, InternalError())
            return
        await self._send(CallResult(unique_id, result).to_json())

    async def _answer_call(self, action: Any, payload: Any) -> dict[str, Any]:
        if not isinstance(action, str) or action not in _ACTIONS:
            raise OcppNotImplemented(details={"cause": f"{str(action)[:40]!r} is not OCPP 1.6"})
        handler = self.route_map.get(action, {}).get("_on_action")
        if handler is None:
            raise NotSupportedError(details={"cause": f"Central does not take {action}"})
        if not isinstance(payload, dict):
            raise FormationViolationError(details={"cause": "the payload must be an object"})
        try:
            get_validator(OcppType.Call, action, "1.6").validate(payload)
        except SchemaError as exc:
            raise call_error(exc) from None
        response = await handler(**camel_to_snake_case(payload))
        return dict(to_camel(remove_nones(serialize_as_dict(response))))

    async def _reply_error(self, unique_id: str, error: OCPPError) -> None:
        await self._send(
            CallError(unique_id, error.code, error.description, error.details).to_json()
        )
