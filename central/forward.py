"""Asking the Central that serves a CP: a charge request or an operator's session stop.

With several Centrals (:mod:`central.cluster`), a driver or an operator may reach a
process that does not serve the CP. That process asks the owner through ``fleet.peers``
and waits for its answer; the owner runs the request as if it were its own, records
any denial, and tells the driver wherever it is connected. No I/O here beyond the port.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from typing import Any

from central import store
from central.errors import CentralError, Conflict, Forbidden, InvalidInput, NotFound
from central.fleet import Fleet
from central.model import ActiveSession, ChargePointView
from central.store import Ticket
from common.protocol.messages import ErrorCode

__all__ = ["error_from", "error_reply", "request_at_owner", "stop_at_owner"]

_CLASSES: dict[int, type[CentralError]] = {
    400: InvalidInput,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
}


def error_reply(exc: CentralError) -> dict[str, Any]:
    """An owner's refusal, as it travels back to the process that asked."""
    return {"error": str(exc.code), "message": exc.message, "status": exc.status}


def error_from(reply: dict[str, Any]) -> CentralError:
    """The refusal an owner answered, raised here as if it were ours."""
    try:
        code = ErrorCode(str(reply.get("error")))
    except ValueError:
        code = ErrorCode.INTERNAL
    cls = _CLASSES.get(int(reply.get("status") or 500), CentralError)
    return cls(str(reply.get("message") or code), code=code)


async def request_at_owner(
    fleet: Fleet,
    cp: ChargePointView,
    driver_id: str | None,
    target: Decimal | None,
    source_ip: str | None,
) -> ActiveSession:
    """Authorise a charge at a CP another process serves; that process decides.

    Raises:
        CentralError: the owner's refusal (it recorded it), or ``cp_unavailable`` when
            the owner did not answer.
    """
    assert fleet.peers is not None
    reply = await fleet.peers.ask(
        "request",
        {
            "cp_id": cp.id,
            "driver_id": driver_id,
            "target_kwh": None if target is None else str(target),
            "source_ip": source_ip,
        },
    )
    if "error" in reply:
        raise error_from(reply)
    return ActiveSession(
        str(reply["session_id"]), cp.id, driver_id, Decimal(str(reply["price_eur_kwh"])), target
    )


async def stop_at_owner(fleet: Fleet, session_id: str, actor: str) -> Ticket:
    """The operator ends a session of a CP another process serves; returns its ticket.

    The owner settles it; should it not answer, the session is settled here. Either way
    ``store.settle``'s conditional UPDATE makes it happen once.
    """
    assert fleet.peers is not None
    try:
        reply = await fleet.peers.ask("stop_session", {"session_id": session_id, "actor": actor})
    except CentralError:
        reply = {}
    if "error" in reply:
        raise error_from(reply)
    settle = partial(
        store.settle,
        session_id=session_id,
        kwh=Decimal(0),
        reason="stopped_by_operator",
        source=actor,
    )
    try:
        ticket, _ = await fleet.writer.call(settle)
    except LookupError:
        raise NotFound(
            f"unknown session {session_id}", code=ErrorCode.UNKNOWN_SESSION, session_id=session_id
        ) from None
    return ticket
