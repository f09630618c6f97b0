"""The Central side of an OCPP charger's connection: a ``Link`` for its monitor and engine.

What the domain sends to the CP's links becomes OCPP calls, made one at a time (OCPP
allows one outstanding call per direction): ``authorize_supply`` →
RemoteStartTransaction, ``stop`` → RemoteStopTransaction, a state change to or from
STOPPED → ChangeAvailability, ``key_revoked`` → the WebSocket is closed. Refusals the
domain sends while a call is handled are collected, so the call's answer can say so.

Health: the WebSocket's pings are the monitor's liveness (a dead connection ends the
supply, like a lost monitor); while it is open a heart-beat is dispatched at the
monitors' interval with the engine health the charger last reported.

The calls the charger makes are :class:`central.ocpp.charger.OcppCharger`'s; frames,
schemas, CallErrors and the rate limit are :class:`central.ocpp.wire.Wire`'s.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any

from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError
from ocpp.v16 import call
from ocpp.v16.enums import AvailabilityType, RemoteStartStopStatus

from central import routing
from central.fleet import SOURCE
from central.model import HOLD_CHARGER, ChargePointView
from central.network import Network
from central.ocpp.mapping import id_tag
from central.ocpp.transactions import Transactions
from central.ocpp.wire import Wire
from central.routing import Peer
from central.states import CPState
from common.events import Event, EventType
from common.protocol.handshake import Role
from common.protocol.messages import ErrorCode, Message, MessageType

__all__ = ["ChargerLink", "refused_code"]

log = logging.getLogger(__name__)

CALL_TIMEOUT = 4.0  # under the domain's 5 s for an engine's answer to an authorisation
# The refusals (``error`` frames, ``charge_denied``) the domain sends while one call is
# being handled, so that the call's answer can say so.
_REFUSALS: contextvars.ContextVar[list[Mapping[str, Any]] | None] = contextvars.ContextVar(
    "ocpp_refusals", default=None
)


def refused_code(refusal: Mapping[str, Any]) -> str:
    return str(refusal.get("code") or ErrorCode.INTERNAL)


class ChargerLink(Wire):
    """One WebSocket connection of the charge point ``cp_id``; a ``Link`` to the domain.

    Args:
        cp_id: the charge box id, authenticated at the upgrade.
        connection: the WebSocket (async ``send``/``recv``/``close``).
        network: Central's domain.
        transactions: the server's record of open transactions.
        peer_ip: the charger's address, for the audit log.
        rate: calls a second allowed (bursts of ``10 * rate``); more are refused.
    """

    def __init__(
        self,
        cp_id: str,
        connection: Any,
        network: Network,
        transactions: Transactions,
        peer_ip: str,
        *,
        rate: float = 10.0,
    ) -> None:
        super().__init__(cp_id, connection, rate=rate, response_timeout=CALL_TIMEOUT)
        self.peer_ip = peer_ip
        self.closed = False
        self.close_reason = ""
        self._net = network
        self._tx = transactions
        self._monitor = Peer(Role.MONITOR, cp_id, self)
        self._engine = Peer(Role.ENGINE, cp_id, self)
        self._engine_ok = True
        self._local_start = False  # StartTransaction without a remote start in progress
        self._availability: AvailabilityType | None = None  # what Central last asked
        self._outbox: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._closing: asyncio.Future[Any] | None = None

    # ------------------------------------------------------------ lifecycle
    @property
    def cp(self) -> ChargePointView:
        return self._net.fleet.get(self.id)

    async def serve(self) -> None:
        """Join the domain as the CP's monitor and engine; return when the socket closes.

        Raises:
            NotFound: the CP is unknown to Central (not loaded yet).
        """
        chargepoints = self._net.chargepoints
        chargepoints.monitor_up(self.id, self, key=uuid.uuid4().bytes, engine_ok=True)
        chargepoints.engine_up(self.id, self)
        # As a native engine reports on connecting: nothing of an earlier Central's is
        # being supplied here that Central could resume (the transaction table is in
        # memory), so a session left open by a restart is settled at its last energy.
        self._spawn(self._dispatch(self._engine, MessageType.STATUS, {"supplying": False}))
        self._spawn(self._send_loop())
        self._spawn(self._heartbeats())
        try:
            await self.start()
        finally:
            self.closed = True
            for task in list(self._tasks):
                task.cancel()
            cp = self._net.fleet.cps.get(self.id)
            if cp is not None and cp.monitor is self:
                cp.holds.discard(HOLD_CHARGER)  # it says so again when it comes back
            chargepoints.monitor_lost(self.id, self, self.close_reason or "connection lost")
            chargepoints.engine_lost(self.id, self)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _heartbeats(self) -> None:
        # The WebSocket's pings say whether the charger is there; this keeps the
        # monitor's heart-beat clock (which a charger does not know of) satisfied, at the
        # interval Central asks of native monitors.
        period = self._net.chargepoints.heartbeat_interval
        while True:
            await self._dispatch(
                self._monitor, MessageType.HEARTBEAT, {"engine_ok": self._engine_ok}
            )
            await asyncio.sleep(period)

    # ------------------------------------------------------- Link (domain → charger)
    def send(self, msg_type: MessageType, body: Mapping[str, Any]) -> None:
        """What the domain says to this CP's monitor or engine, as OCPP."""
        if msg_type in (MessageType.ERROR, MessageType.CHARGE_DENIED):
            refusals = _REFUSALS.get()
            if refusals is not None:
                refusals.append(body)
            else:
                log.info("refused", extra={"fields": {"cp_id": self.id, **dict(body)}})
            return
        if self.closed:
            return
        if msg_type is MessageType.STATUS:
            self._reconcile_availability()
        elif msg_type is MessageType.AUTHORIZE_SUPPLY:
            self._authorize(body)
        elif msg_type is MessageType.STOP:
            self._stop(str(body.get("session_id", "")), str(body.get("reason", "stopped")))
        elif msg_type is MessageType.KEY_REVOKED:
            self.close(str(body.get("reason", "key revoked")))
        elif msg_type is MessageType.TICKET:
            log.info("ticket", extra={"fields": {"cp_id": self.id, **dict(body)}})

    def close(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        # Not one of self._tasks: those are cancelled when the connection ends.
        self._closing = asyncio.ensure_future(self._connection.close(1008, reason[:120]))

    def _reconcile_availability(self) -> None:
        """Ask the charger to be in service exactly when nothing but itself holds the CP."""
        cp = self._net.fleet.cps.get(self.id)
        if cp is None or cp.state is CPState.DISCONNECTED:
            return
        held = bool(cp.holds - {HOLD_CHARGER})
        wanted = AvailabilityType.inoperative if held else AvailabilityType.operative
        if wanted is not self._availability:
            self._availability = wanted
            self._outbox.put_nowait(lambda: self._change_availability(wanted))

    async def _change_availability(self, wanted: AvailabilityType) -> None:
        try:
            result = await self.call(call.ChangeAvailability(connector_id=0, type=wanted), False)
        except Exception:
            # Not done (a charger still booting may not answer): asked again on the next
            # state change or boot.
            if self._availability is wanted:
                self._availability = None
            raise
        log.info(
            "availability asked",
            extra={"fields": {"cp_id": self.id, "type": str(wanted), "status": result.status}},
        )

    def _authorize(self, body: Mapping[str, Any]) -> None:
        session_id = str(body.get("session_id"))
        target = body.get("target_kwh")
        self._tx.expect(session_id, Decimal(str(target)) if target is not None else None)
        if self._local_start:
            # The charger already started (a tag at its reader): it agrees by definition.
            self._spawn(self._answer(session_id, True, ""))
            return
        driver = body.get("driver_id")
        self._outbox.put_nowait(lambda: self._remote_start(session_id, str(driver or self.id)))

    async def _remote_start(self, session_id: str, driver_id: str) -> None:
        request = call.RemoteStartTransaction(id_tag=id_tag(driver_id), connector_id=1)
        try:
            result = await self.call(request, False)
        except (OCPPError, UnknownCallErrorCodeError, TimeoutError) as exc:
            self._tx.targets.pop(session_id, None)
            await self._answer(session_id, False, f"charger did not start: {type(exc).__name__}")
            return
        accepted = result.status == RemoteStartStopStatus.accepted
        if not accepted:
            self._tx.targets.pop(session_id, None)
        await self._answer(session_id, accepted, "" if accepted else "charger rejected the start")

    async def _answer(self, session_id: str, accepted: bool, reason: str) -> None:
        kind = MessageType.CHARGE_AUTHORIZED if accepted else MessageType.CHARGE_DENIED
        body = {"session_id": session_id, "reason": reason}
        await self._dispatch(self._engine, kind, body)

    def _stop(self, session_id: str, reason: str) -> None:
        found = self._tx.find(self.id, session_id)
        if found is None:
            return  # not started at the charger: its StartTransaction will be refused
        tx_id, tx = found
        tx.stop_asked = reason
        self._outbox.put_nowait(lambda: self._remote_stop(tx_id))

    async def _remote_stop(self, tx_id: int) -> None:
        result = await self.call(call.RemoteStopTransaction(transaction_id=tx_id), False)
        log.info(
            "remote stop asked",
            extra={"fields": {"cp_id": self.id, "transaction_id": tx_id, "status": result.status}},
        )

    async def _send_loop(self) -> None:
        while True:
            job = await self._outbox.get()
            try:
                await job()
            except (OCPPError, UnknownCallErrorCodeError, TimeoutError) as exc:
                log.warning(
                    "charger did not do what Central asked",
                    extra={"fields": {"cp_id": self.id, "error": type(exc).__name__}},
                )
            except Exception:
                if self.closed:
                    return
                log.exception("calling the charger failed", extra={"fields": {"cp_id": self.id}})

    def audit(self, reason: str) -> None:
        self._net.fleet.emit(
            Event(
                EventType.ERROR,
                SOURCE,
                {"reason": reason, "protocol": "ocpp1.6"},
                cp_id=self.id,
                actor=self.id,
                source_ip=self.peer_ip,
            )
        )

    # --------------------------------------------------------- the domain, for calls
    async def _dispatch(
        self, peer: Peer, msg_type: MessageType, body: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        """Handle a native message for this CP; the domain's refusal, if it refused."""
        refusals: list[Mapping[str, Any]] = []
        token = _REFUSALS.set(refusals)
        try:
            message = Message(msg_type, 1, time.time(), dict(body))
            await routing.dispatch(self._net, peer, message, routing.route(peer.role, msg_type))
        finally:
            _REFUSALS.reset(token)
        return refusals[0] if refusals else None
