"""What another Central process asks of this one, carried out on its own CPs and drivers.

Messages arrive from :mod:`central.cluster` (PostgreSQL ``LISTEN``) as dicts with an
``op``. Each acts only on what this process serves: a hold on a CP served elsewhere,
or a message for a driver connected elsewhere, is someone else's and is ignored here.
Questions (``request``, ``stop_session``) are answered by the CP's owner alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from central import store
from central.errors import CentralError
from central.forward import error_reply
from central.network import Network
from common.protocol.messages import MessageType

__all__ = ["RemoteOps"]

log = logging.getLogger(__name__)

Answer = Callable[[Mapping[str, Any], dict[str, Any]], None]


class RemoteOps:
    """Applies other processes' messages to this process's part of the network.

    Args:
        network: this process's domain.
        answer: sends the reply to a question (the message asked, the reply).
    """

    def __init__(self, network: Network, answer: Answer) -> None:
        self._net = network
        self._answer = answer
        self._tasks: set[asyncio.Task[None]] = set()

    def handle(self, msg: Mapping[str, Any]) -> None:
        """Carry out one message; a malformed one is logged and dropped."""
        try:
            handler = getattr(self, f"_op_{msg['op']}", None)
            if handler is None:
                log.warning("unknown message from another Central", extra={"fields": dict(msg)})
                return
            handler(msg)
        except (KeyError, TypeError, ValueError, InvalidOperation):
            log.exception("malformed message from another Central")

    def _local(self, cp_id: object) -> Any:
        cp = self._net.fleet.cps.get(str(cp_id))
        return None if cp is None or cp.remote else cp

    def _op_hold(self, msg: Mapping[str, Any]) -> None:
        fleet = self._net.fleet
        cp_id = msg["cp_id"]
        cps = list(fleet.cps.values()) if cp_id is None else [fleet.cps.get(str(cp_id))]
        self._net.operator.apply_hold([cp for cp in cps if cp is not None], bool(msg["stopped"]))

    def _op_revoke(self, msg: Mapping[str, Any]) -> None:
        cp = self._local(msg["cp_id"])
        if cp is not None:
            self._net.chargepoints.revoke(cp)

    def _op_price(self, msg: Mapping[str, Any]) -> None:
        cp = self._net.fleet.cps.get(str(msg["cp_id"]))
        if cp is not None:
            cp.price = Decimal(str(msg["price"]))

    def _op_weather(self, msg: Mapping[str, Any]) -> None:
        self._net.weather.apply(str(msg["location"]), bool(msg["alert"]))

    def _op_reading(self, msg: Mapping[str, Any]) -> None:
        self._net.weather.remember(str(msg["location"]), dict(msg))

    def _op_to_driver(self, msg: Mapping[str, Any]) -> None:
        fleet = self._net.fleet
        link = fleet.drivers.get(str(msg["driver_id"]))
        if link is None:
            return
        msg_type = MessageType(msg["type"])
        body = msg["body"]
        link.send(msg_type, body)
        if msg_type is MessageType.TICKET:
            fleet.writer.submit(partial(store.mark_delivered, session_ids=[body["session_id"]]))

    def _op_request(self, msg: Mapping[str, Any]) -> None:
        if self._local(msg["cp_id"]) is None:
            return  # not ours to answer
        target = msg.get("target_kwh")

        async def run() -> dict[str, Any]:
            s = await self._net.sessions.request(
                str(msg["cp_id"]),
                msg.get("driver_id"),
                None if target is None else Decimal(str(target)),
                msg.get("source_ip"),
            )
            return {"session_id": s.id, "price_eur_kwh": str(s.price)}

        self._spawn(msg, run())

    def _op_stop_session(self, msg: Mapping[str, Any]) -> None:
        session_id = str(msg["session_id"])
        if not any(
            cp.session is not None and cp.session.id == session_id and not cp.remote
            for cp in self._net.fleet.cps.values()
        ):
            return

        async def run() -> dict[str, Any]:
            ticket = await self._net.operator.stop_session(session_id, str(msg["actor"]))
            return {"ticket": ticket.to_body()}

        self._spawn(msg, run())

    def _spawn(self, msg: Mapping[str, Any], work: Coroutine[Any, Any, dict[str, Any]]) -> None:
        async def run() -> None:
            try:
                reply = await work
            except CentralError as exc:
                reply = error_reply(exc)
            except Exception as exc:
                log.exception("answering another Central failed")
                reply = error_reply(CentralError(f"the serving Central failed: {exc}"))
            self._answer(msg, reply)

        task = asyncio.ensure_future(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
