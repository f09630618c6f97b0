"""A simulated OCPP 1.6J charger with one connector, on the ``ocpp`` package's ChargePoint.

It behaves like a simple real charger, so the demo and the tests meet Central's OCPP
edge the way the field does:

- boots (BootNotification, then StatusNotification of connectors 0 and 1), and sends
  Heartbeat at the interval Central gives;
- takes RemoteStartTransaction (the vehicle is "plugged in" at once), starts the
  transaction, sends MeterValues every ``meter_interval`` seconds (energy register in
  Wh, power in W) and stops on RemoteStopTransaction, after ``max_session`` simulated
  seconds, or when told (:meth:`SimCharger.unplug`);
- obeys ChangeAvailability (Scheduled while charging, applied when the charge ends);
- :meth:`SimCharger.fault` and :meth:`SimCharger.recover` report a fault and its end.

Time is scaled by ``speed`` (simulated seconds per real second), like ``ev-cp-engine``.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call
from ocpp.v16 import call_result as result
from ocpp.v16.enums import (
    Action,
    AvailabilityStatus,
    AvailabilityType,
    ChargePointErrorCode,
    ChargePointStatus,
    RemoteStartStopStatus,
)

__all__ = ["SimCharger", "Transaction"]

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Transaction:
    id: int
    id_tag: str
    meter_start: int


class SimCharger(ChargePoint):
    """One simulated charger on an open WebSocket (``connection``).

    Args:
        cp_id: its charge box id.
        connection: the WebSocket.
        kw: charging power.
        speed: simulated seconds per real second.
        meter_interval: real seconds between MeterValues.
        max_session: simulated seconds after which the vehicle leaves by itself.
    """

    def __init__(
        self,
        cp_id: str,
        connection: Any,
        *,
        kw: float = 11.0,
        speed: float = 1.0,
        meter_interval: float = 1.0,
        max_session: float = 4 * 3600,
    ) -> None:
        super().__init__(cp_id, connection, response_timeout=10)
        self.kw, self.speed, self.meter_interval = kw, speed, meter_interval
        self.max_session = max_session
        self.register_wh = 0.0  # the meter: energy delivered since it was installed
        self.status = ChargePointStatus.available
        self.operative = True
        self._pending_inoperative = False
        self._start_accepted = False
        self.transaction: Transaction | None = None
        self.heartbeat_interval = 60
        self.accepted = False
        self.tickets: list[int] = []  # transaction ids that were stopped
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def connection(self) -> Any:
        """The WebSocket it speaks on."""
        return self._connection

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----------------------------------------------------------- start-up
    async def boot(self) -> bool:
        """BootNotification and the first statuses; True if Central accepted it."""
        answer = await self.call(
            call.BootNotification(charge_point_model="SimCharger", charge_point_vendor="EVCharging")
        )
        self.accepted = answer.status == "Accepted"
        self.heartbeat_interval = max(int(answer.interval), 1)
        if self.accepted:
            for connector in (0, 1):
                await self.notify(self.status, connector)
            self._spawn(self._heartbeats())
        return self.accepted

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            await self.call(call.Heartbeat())

    async def notify(
        self,
        status: ChargePointStatus,
        connector: int = 1,
        error: ChargePointErrorCode = ChargePointErrorCode.no_error,
        info: str | None = None,
    ) -> None:
        self.status = status
        await self.call(
            call.StatusNotification(
                connector_id=connector, error_code=error, status=status, info=info, timestamp=_now()
            )
        )

    # ------------------------------------------------------- what Central asks
    @on(Action.remote_start_transaction)
    async def on_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any):
        free = self.status == ChargePointStatus.available and self.transaction is None
        ok = free and self.operative and connector_id in (None, 1)
        self._start_accepted = ok
        return result.RemoteStartTransaction(
            status=RemoteStartStopStatus.accepted if ok else RemoteStartStopStatus.rejected
        )

    @after(Action.remote_start_transaction)
    async def after_remote_start(self, id_tag: str, connector_id: int | None = None, **_: Any):
        if self._start_accepted:  # the after-hook runs whatever the answer was
            self._start_accepted = False
            await self.start_charge(id_tag)

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, transaction_id: int, **_: Any):
        ours = self.transaction is not None and self.transaction.id == transaction_id
        if ours:
            self._spawn(self.stop_charge("Remote"))
        return result.RemoteStopTransaction(
            status=RemoteStartStopStatus.accepted if ours else RemoteStartStopStatus.rejected
        )

    @on(Action.change_availability)
    async def on_change_availability(self, connector_id: int, type: str, **_: Any):  # noqa: A002
        if type == AvailabilityType.inoperative and self.transaction is not None:
            self._pending_inoperative = True
            return result.ChangeAvailability(status=AvailabilityStatus.scheduled)
        self._pending_inoperative = False
        self.operative = type == AvailabilityType.operative
        self._spawn(self._show_availability())
        return result.ChangeAvailability(status=AvailabilityStatus.accepted)

    async def _show_availability(self) -> None:
        if self.status == ChargePointStatus.faulted:
            return
        wanted = ChargePointStatus.available if self.operative else ChargePointStatus.unavailable
        if wanted != self.status:
            await self.notify(wanted)

    # --------------------------------------------------------------- charging
    async def start_charge(self, tag: str) -> bool:
        """A vehicle plugs in with ``tag``: StartTransaction, then metering; True if accepted."""
        await self.notify(ChargePointStatus.preparing)
        meter_start = round(self.register_wh)
        answer = await self.call(
            call.StartTransaction(
                connector_id=1, id_tag=tag, meter_start=meter_start, timestamp=_now()
            )
        )
        if answer.id_tag_info["status"] != "Accepted":
            # Central refused: the transaction is ended at once, as the spec asks.
            await self.call(
                call.StopTransaction(
                    meter_stop=meter_start,
                    timestamp=_now(),
                    transaction_id=answer.transaction_id,
                    reason="DeAuthorized",
                )
            )
            await self.notify(ChargePointStatus.available)
            return False
        self.transaction = Transaction(answer.transaction_id, tag, meter_start)
        await self.notify(ChargePointStatus.charging)
        self._spawn(self._meter(self.transaction))
        return True

    async def _meter(self, tx: Transaction) -> None:
        elapsed = 0.0
        while self.transaction is tx:
            await asyncio.sleep(self.meter_interval)
            if self.transaction is not tx:
                return
            step = self.meter_interval * self.speed
            elapsed += step
            self.register_wh += self.kw * 1000 * step / 3600
            await self.call(
                call.MeterValues(
                    connector_id=1,
                    transaction_id=tx.id,
                    meter_value=[
                        {
                            "timestamp": _now(),
                            "sampledValue": [
                                {
                                    "value": str(round(self.register_wh)),
                                    "measurand": "Energy.Active.Import.Register",
                                    "unit": "Wh",
                                },
                                {
                                    "value": f"{self.kw * 1000:.0f}",
                                    "measurand": "Power.Active.Import",
                                    "unit": "W",
                                },
                            ],
                        }
                    ],
                )
            )
            if elapsed >= self.max_session:
                await self.stop_charge("EVDisconnected")

    async def stop_charge(self, reason: str = "EVDisconnected") -> None:
        """End the transaction (StopTransaction), then show the connector's new status."""
        tx = self.transaction
        if tx is None:
            return
        self.transaction = None
        await self.call(
            call.StopTransaction(
                meter_stop=round(self.register_wh),
                timestamp=_now(),
                transaction_id=tx.id,
                reason=reason,
                id_tag=tx.id_tag,
            )
        )
        self.tickets.append(tx.id)
        if self.status == ChargePointStatus.faulted:
            return
        if self._pending_inoperative:
            self._pending_inoperative = False
            self.operative = False
        await self.notify(
            ChargePointStatus.available if self.operative else ChargePointStatus.unavailable
        )

    async def unplug(self) -> None:
        await self.stop_charge("EVDisconnected")

    async def fault(self, info: str = "simulated fault") -> None:
        """The charger fails: Faulted at once; a running transaction ends (EmergencyStop)."""
        await self.notify(ChargePointStatus.faulted, 1, ChargePointErrorCode.other_error, info)
        await self.stop_charge("EmergencyStop")

    async def recover(self) -> None:
        await self.notify(
            ChargePointStatus.available if self.operative else ChargePointStatus.unavailable
        )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
