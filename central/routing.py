"""One dispatch table per role: which messages a monitor, an engine or a driver may send.

Every message is parsed into its typed body (:mod:`common.protocol.messages`) before a
handler sees it, and every handler acts for the connection's own identity: the CP an
engine or monitor authenticated as, the driver a driver authenticated as. Ids in a
body never choose the object acted on; where a body names one, it must be the peer's
own. A :class:`~central.errors.CentralError` from a handler becomes an ``error`` frame
with its code and an audit entry; nothing else escapes :func:`dispatch`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from central.errors import CentralError, Forbidden, InvalidInput
from central.model import ChargePointView, Link
from central.network import Network
from common.protocol.errors import MessageError
from common.protocol.handshake import Role
from common.protocol.messages import (
    ChargeRequest,
    EngineAnswer,
    EngineHealth,
    EngineReport,
    ErrorCode,
    Heartbeat,
    Message,
    MessageType,
    NoBody,
    SupplyEnded,
    SupplyStarted,
    Telemetry,
)

__all__ = ["ROUTES", "Peer", "Route", "dispatch", "dispatch_now", "route"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Peer:
    """An authenticated connection: who it is, and where its answers go."""

    role: Role
    id: str
    link: Link

    @property
    def cp_id(self) -> str | None:
        return None if self.role is Role.DRIVER else self.id

    @property
    def driver_id(self) -> str | None:
        return self.id if self.role is Role.DRIVER else None


@dataclass(frozen=True)
class Route:
    """How one message type of one role is read and handled.

    ``background``: the handler runs in its own task, so the connection keeps reading
    (a charge request waits for an engine's answer, which may come on this very link).
    """

    parse: Callable[[Mapping[str, Any]], Any]
    handle: Callable[[Network, Peer, Any], Any]
    background: bool = False


# ------------------------------------------------------------------ monitor
def _heartbeat(net: Network, peer: Peer, body: Heartbeat) -> None:
    net.chargepoints.heartbeat(peer.id, peer.link, body.engine_ok, body.reason)


def _engine_health(net: Network, peer: Peer, body: EngineHealth) -> None:
    net.chargepoints.engine_health(peer.id, peer.link, body.ok, body.reason)


# ------------------------------------------------------------------- engine
def _own_cp(net: Network, peer: Peer) -> ChargePointView:
    cp = net.fleet.get(peer.id)
    if cp.engine is not peer.link:
        raise Forbidden(
            "this is no longer the charge point's engine connection", code=ErrorCode.NOT_ALLOWED
        )
    return cp


def _answer(accepted: bool, net: Network, peer: Peer, body: EngineAnswer) -> None:
    net.sessions.answer(_own_cp(net, peer), body.session_id, accepted, body.reason)


def _supply_started(net: Network, peer: Peer, body: SupplyStarted) -> None:
    net.sessions.started(_own_cp(net, peer), body.session_id)


def _telemetry(net: Network, peer: Peer, body: Telemetry) -> None:
    net.sessions.telemetry(_own_cp(net, peer), body)


async def _supply_ended(net: Network, peer: Peer, body: SupplyEnded) -> None:
    await net.sessions.ended(_own_cp(net, peer), peer.link, body)


async def _engine_report(net: Network, peer: Peer, body: EngineReport) -> None:
    await net.sessions.reconcile(_own_cp(net, peer), body)


async def _local_request(net: Network, peer: Peer, body: ChargeRequest) -> None:
    """A charge asked at the CP's own menu: it belongs to no driver account."""
    if body.driver_id is not None:
        raise Forbidden("a charge asked at a charge point cannot be billed to a driver")
    if body.cp_id not in (None, peer.id):
        raise Forbidden("an engine may ask for a charge only at its own charge point")
    await _request(net, peer, peer.id, None, body)


# ------------------------------------------------------------------- driver
async def _driver_request(net: Network, peer: Peer, body: ChargeRequest) -> None:
    if body.driver_id not in (None, peer.id):
        raise Forbidden("a driver may ask for a charge only on its own account")
    if body.cp_id is None:
        raise InvalidInput("cp_id is required", code=ErrorCode.BAD_MESSAGE)
    await _request(net, peer, body.cp_id, peer.id, body)


async def _request(
    net: Network, peer: Peer, cp_id: str, driver_id: str | None, body: ChargeRequest
) -> None:
    # An authorisation reaches the driver from the sessions, the moment the engine agrees.
    try:
        await net.sessions.request(cp_id, driver_id, body.target_kwh, peer.link.peer_ip)
    except CentralError as exc:
        peer.link.send(
            MessageType.CHARGE_DENIED,
            {"cp_id": cp_id, "reason": exc.message, "code": str(exc.code)},
        )


def _list_cps(net: Network, peer: Peer, body: NoBody) -> None:
    peer.link.send(MessageType.CP_LIST, {"cps": net.fleet.free_cps()})


async def _history(net: Network, peer: Peer, body: NoBody) -> None:
    peer.link.send(MessageType.HISTORY, {"tickets": await net.sessions.history(peer.id)})


async def _status(net: Network, peer: Peer, body: NoBody) -> None:
    peer.link.send(MessageType.STATUS, await net.sessions.status(peer.id))


_M = MessageType
ROUTES: dict[Role, dict[MessageType, Route]] = {
    Role.MONITOR: {
        _M.HEARTBEAT: Route(Heartbeat.parse, _heartbeat),
        _M.ENGINE_STATUS: Route(EngineHealth.parse, _engine_health),
    },
    Role.ENGINE: {
        _M.CHARGE_AUTHORIZED: Route(EngineAnswer.parse, partial(_answer, True)),
        _M.CHARGE_DENIED: Route(EngineAnswer.parse, partial(_answer, False)),
        _M.SUPPLY_STARTED: Route(SupplyStarted.parse, _supply_started),
        _M.TELEMETRY: Route(Telemetry.parse, _telemetry),
        _M.SUPPLY_ENDED: Route(SupplyEnded.parse, _supply_ended),
        _M.STATUS: Route(EngineReport.parse, _engine_report),
        _M.CHARGE_REQUEST: Route(ChargeRequest.parse, _local_request, background=True),
    },
    Role.DRIVER: {
        _M.CHARGE_REQUEST: Route(ChargeRequest.parse, _driver_request, background=True),
        _M.LIST_CPS: Route(NoBody.parse, _list_cps),
        _M.HISTORY: Route(NoBody.parse, _history),
        _M.STATUS: Route(NoBody.parse, _status),
    },
}


def route(role: Role, msg_type: MessageType) -> Route | None:
    """How ``role``'s ``msg_type`` is handled; None: that role does not send it."""
    return ROUTES[role].get(msg_type)


def dispatch_now(
    net: Network, peer: Peer, msg: Message, route: Route | None
) -> Coroutine[Any, Any, None] | None:
    """Handle ``msg`` by its ``route`` as far as it goes without waiting.

    Returns what is left to await (a handler waiting for the database, say), or None
    when the message is done; a refusal is answered, never raised.
    """
    try:
        if route is None:
            raise Forbidden(
                f"{msg.type} is not a message a {peer.role} sends", code=ErrorCode.NOT_ALLOWED
            )
        try:
            body = route.parse(msg.body)
        except MessageError as exc:
            raise InvalidInput(exc.message, code=ErrorCode.BAD_MESSAGE) from None
        result = route.handle(net, peer, body)
    except Exception as exc:
        _refuse(net, peer, msg, exc)
        return None
    return None if result is None else _finish(net, peer, msg, result)


async def dispatch(net: Network, peer: Peer, msg: Message, route: Route | None) -> None:
    """Handle ``msg`` by its ``route`` to the end; a refusal is answered, never raised."""
    pending = dispatch_now(net, peer, msg, route)
    if pending is not None:
        await pending


async def _finish(net: Network, peer: Peer, msg: Message, result: Awaitable[None]) -> None:
    try:
        await result
    except Exception as exc:
        _refuse(net, peer, msg, exc)


def _refuse(net: Network, peer: Peer, msg: Message, exc: Exception) -> None:
    if not isinstance(exc, CentralError):
        log.error("handling %s from %s failed", msg.type, peer.id, exc_info=exc)
        exc = CentralError("Central could not handle this message")
    net.fleet.refuse(peer.link, exc, msg.type, cp_id=peer.cp_id, driver_id=peer.driver_id)
