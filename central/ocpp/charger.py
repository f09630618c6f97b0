"""One connected OCPP 1.6J charger, adapted into the roles Central knows: monitor + engine.

The charger is a :class:`central.model.Link` for its CP's monitor *and* engine, so the
domain treats it like a native charge point. Both directions are translated at this
edge and nowhere else:

- **In**: each OCPP call becomes the typed body of a native message and goes through
  :func:`central.routing.dispatch` for this connection's own CP, so every authority rule
  (own CP only, own sessions only, energy bounds, no billing of drivers) applies
  unchanged. A refusal the domain answers with an ``error`` frame (and audits) is
  turned into the CallError or the ``idTagInfo`` OCPP expects.
- **Out**: what the domain sends to the CP's links becomes OCPP calls:
  :class:`central.ocpp.link.ChargerLink`, which this class extends.

Frames, schemas, CallErrors and the rate limit are :class:`central.ocpp.wire.Wire`'s;
this class is what the charger's calls mean to Central.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ocpp.exceptions import (
    GenericError,
    InternalError,
    OCPPError,
    PropertyConstraintViolationError,
    SecurityError,
)
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
    AvailabilityType,
    DataTransferStatus,
    RegistrationStatus,
)

from central.model import HOLD_CHARGER
from central.ocpp.link import ChargerLink, refused_code
from central.ocpp.mapping import (
    Effect,
    id_tag,
    read_meter,
    status_effect,
    stop_reason,
    transaction_id,
)
from central.ocpp.transactions import Transaction
from central.states import CPState, Trigger
from common.db.models import SessionStatus
from common.protocol.messages import ErrorCode, MessageType

__all__ = ["OcppCharger"]

log = logging.getLogger(__name__)

BOOT_INTERVAL = 60  # Heartbeat interval given at boot; liveness is the WebSocket's ping


def _ocpp_error(refusal: Mapping[str, Any]) -> OCPPError:
    """The CallError for a domain refusal of a call (docs/ocpp.md lists them)."""
    code, reason = refused_code(refusal), str(refusal.get("reason", ""))[:200]
    details = {"code": code, "cause": reason}
    if code in (ErrorCode.FORBIDDEN, ErrorCode.NOT_ALLOWED):
        return SecurityError(details=details)
    if code in (
        ErrorCode.BAD_MESSAGE,
        ErrorCode.BAD_ENERGY,
        ErrorCode.INVALID_VALUE,
        ErrorCode.NO_SESSION,
        ErrorCode.UNKNOWN_SESSION,
    ):
        return PropertyConstraintViolationError(details=details)
    if code == ErrorCode.INTERNAL:
        return InternalError(details=details)
    return GenericError(details=details)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class OcppCharger(ChargerLink):
    """What a charger's calls mean to Central (the connection itself is ``ChargerLink``)."""

    # ---------------------------------------------------------- the calls we take
    @on(Action.boot_notification)
    async def on_boot(self, charge_point_vendor: str, charge_point_model: str, **_: Any):
        cp = self._net.fleet.cps.get(self.id)
        ok = cp is not None and cp.registered
        log.info(
            "boot notification",
            extra={
                "fields": {
                    "cp_id": self.id,
                    "vendor": charge_point_vendor,
                    "model": charge_point_model,
                    "accepted": ok,
                }
            },
        )
        status = RegistrationStatus.accepted if ok else RegistrationStatus.rejected
        if ok:
            self._reconcile_availability()  # unless already asked and answered
        return call_result.BootNotification(
            current_time=_now(), interval=BOOT_INTERVAL, status=status
        )

    @on(Action.heartbeat)
    async def on_heartbeat(self, **_: Any):
        return call_result.Heartbeat(current_time=_now())

    @on(Action.status_notification)
    async def on_status(
        self, connector_id: int, error_code: str, status: str, info: str = "", **_: Any
    ):
        effect = status_effect(connector_id, status)
        if effect is Effect.FAULTED:
            await self._health(False, f"{error_code}: {info}" if info else error_code)
        elif effect is Effect.OPERATIVE:
            await self._health(True, "")
            self._lift_charger_hold()
            if status == "Available" and self._availability is AvailabilityType.inoperative:
                # Central holds the CP: the charger must not take vehicles. Ask again.
                self._outbox.put_nowait(
                    lambda: self._change_availability(AvailabilityType.inoperative)
                )
            else:
                self._reconcile_availability()
        elif effect is Effect.UNAVAILABLE:
            await self._health(True, "")
            if self._availability is not AvailabilityType.inoperative:
                self._hold_at_charger()
        return call_result.StatusNotification()

    async def _health(self, ok: bool, reason: str) -> None:
        if ok == self._engine_ok:
            return
        self._engine_ok = ok
        await self._dispatch(self._monitor, MessageType.ENGINE_STATUS, {"ok": ok, "reason": reason})

    def _hold_at_charger(self) -> None:
        """The charger took itself out of service: STOPPED until it is Available again."""
        cp = self.cp
        if cp.monitor is not self or HOLD_CHARGER in cp.holds:
            return
        cp.holds.add(HOLD_CHARGER)
        self._net.sessions.end_supply(cp, "unavailable")
        if cp.state in (CPState.ACTIVATED, CPState.SUPPLYING):
            self._net.fleet.fire(cp, Trigger.STOP, "unavailable at the charger")

    def _lift_charger_hold(self) -> None:
        cp = self.cp
        if cp.monitor is not self or HOLD_CHARGER not in cp.holds:
            return
        cp.holds.discard(HOLD_CHARGER)
        if cp.state is CPState.STOPPED and not cp.holds:
            self._net.fleet.fire(cp, Trigger.RESUME, "available at the charger")

    @on(Action.authorize)
    async def on_authorize(self, id_tag: str, **_: Any):
        return call_result.Authorize(id_tag_info={"status": self._tag_status(id_tag)})

    def _tag_status(self, tag: str) -> AuthorizationStatus:
        """Accepted: the driver Central authorised here, or a local charge at a free CP.

        A tag at the reader never bills a driver account: the charger's word that the
        driver is there is not the driver's (docs/ocpp.md, Authority).
        """
        cp = self.cp
        s = cp.session
        if s is not None:
            pending = s.status == SessionStatus.AUTHORIZED and s.driver_id is not None
            if pending and id_tag(s.driver_id or "") == tag:
                return AuthorizationStatus.accepted
            return AuthorizationStatus.concurrent_tx if pending else AuthorizationStatus.blocked
        if cp.state is not CPState.ACTIVATED:
            return AuthorizationStatus.blocked
        return AuthorizationStatus.accepted

    @on(Action.start_transaction)
    async def on_start(self, connector_id: int, id_tag: str, meter_start: int, **_: Any):
        accepted = AuthorizationStatus.accepted
        again = self._repeated_start(id_tag)
        if again is not None:  # the charger did not get our answer and asks again
            return call_result.StartTransaction(
                transaction_id=again, id_tag_info={"status": accepted}
            )
        session_id, refusal = await self._start(id_tag)
        if session_id is None or refusal is not None:
            # A number of no session, so that its StopTransaction cannot end a real one.
            tx_id = transaction_id(str(uuid.uuid4()))
            code = refused_code(refusal or {})
            status = (
                AuthorizationStatus.concurrent_tx
                if code in (ErrorCode.CP_BUSY, ErrorCode.DRIVER_BUSY)
                else AuthorizationStatus.invalid
            )
            return call_result.StartTransaction(
                transaction_id=tx_id, id_tag_info={"status": status}
            )
        tx_id = transaction_id(session_id)
        target = self._tx.targets.pop(session_id, None)
        self._tx.add(self.id, tx_id, Transaction(session_id, Decimal(meter_start), target))
        return call_result.StartTransaction(transaction_id=tx_id, id_tag_info={"status": accepted})

    def _repeated_start(self, tag: str) -> int | None:
        """The transaction id of a StartTransaction already accepted for the live session."""
        s = self.cp.session
        if s is None or s.status != SessionStatus.SUPPLYING:
            return None
        if s.driver_id is not None and id_tag(s.driver_id) != tag:
            return None
        found = self._tx.find(self.id, s.id)
        return found[0] if found else None

    async def _start(self, tag: str) -> tuple[str | None, Mapping[str, Any] | None]:
        """The session a StartTransaction begins, and the domain's refusal if any."""
        cp = self.cp
        s = cp.session
        if s is None:
            # A tag at the reader: a local charge, billed to no driver (a native CP's menu).
            self._local_start = True
            try:
                refusal = await self._dispatch(self._engine, MessageType.CHARGE_REQUEST, {})
            finally:
                self._local_start = False
            s = cp.session
            if refusal is not None or s is None:
                return None, refusal or {"code": ErrorCode.CP_UNAVAILABLE}
        elif s.driver_id is not None and id_tag(s.driver_id) != tag:
            return None, {"code": ErrorCode.CP_BUSY, "reason": "authorised for another driver"}
        refusal = await self._dispatch(
            self._engine, MessageType.SUPPLY_STARTED, {"session_id": s.id}
        )
        return s.id, refusal

    @on(Action.meter_values)
    async def on_meter_values(
        self, connector_id: int, meter_value: list[Any], transaction_id: int | None = None, **_: Any
    ):
        if transaction_id is None:
            return call_result.MeterValues()  # readings outside a transaction: not billed
        try:
            meter = read_meter(meter_value)
        except ValueError as exc:
            raise PropertyConstraintViolationError(details={"cause": str(exc)}) from None
        if meter.wh is None:
            return call_result.MeterValues()
        tx = self._tx.of(self.id).get(transaction_id)
        live = self.cp.session
        if tx and tx.stop_asked and (live is None or live.id != tx.session_id):
            return call_result.MeterValues()  # readings in flight after Central ended it
        session_id = tx.session_id if tx else f"ocpp-tx-{transaction_id}"
        kwh = (meter.wh - (tx.meter_start_wh if tx else 0)) / 1000
        body: dict[str, Any] = {"session_id": session_id, "kwh": float(kwh)}
        if meter.w is not None:
            body["kw"] = float(meter.w / 1000)
        refusal = await self._dispatch(self._engine, MessageType.TELEMETRY, body)
        if refusal is not None:
            if refused_code(refusal) in (ErrorCode.NO_SESSION, ErrorCode.UNKNOWN_SESSION):
                # Supplying outside any session Central holds: it must stop (as an engine does).
                self._outbox.put_nowait(lambda: self._remote_stop(transaction_id))
            raise _ocpp_error(refusal)
        if tx and tx.target_kwh is not None and kwh >= tx.target_kwh and not tx.stop_asked:
            tx.stop_asked = "target_reached"
            self._outbox.put_nowait(lambda: self._remote_stop(transaction_id))
        return call_result.MeterValues()

    @on(Action.stop_transaction)
    async def on_stop(
        self, meter_stop: int, transaction_id: int, reason: str | None = None, **_: Any
    ):
        txs = self._tx.of(self.id)
        tx = txs.get(transaction_id)
        session_id = tx.session_id if tx else f"ocpp-tx-{transaction_id}"
        kwh = (Decimal(meter_stop) - (tx.meter_start_wh if tx else 0)) / 1000
        why = stop_reason(reason, tx.stop_asked if tx else None)
        body = {"session_id": session_id, "kwh": float(max(kwh, Decimal(0))), "reason": why}
        refusal = await self._dispatch(self._engine, MessageType.SUPPLY_ENDED, body)
        live = self.cp.session
        if refusal is not None and live is not None and live.id == session_id:
            # The final reading was refused (audited) but the transaction is over at the
            # charger: settle with the energy Central last accepted, as after a fault.
            body = {**body, "kwh": float(live.kwh)}
            await self._dispatch(self._engine, MessageType.SUPPLY_ENDED, body)
        # Settled, or not a session of this CP (refused and audited): either way the
        # charger is done with it and must not queue it for ever.
        txs.pop(transaction_id, None)
        return call_result.StopTransaction()

    @on(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, **_: Any):
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status(self, **_: Any):
        return call_result.DiagnosticsStatusNotification()

    @on(Action.firmware_status_notification)
    async def on_firmware_status(self, **_: Any):
        return call_result.FirmwareStatusNotification()
