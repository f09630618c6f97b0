"""Operator commands: stop and resume, revoke a key, set a price, end a session.

Called from API_Central (bearer token checked there) and the console. Each command is
recorded with its actor and source address, and answers once that record is durable.
With several Centrals, a command about a CP another process serves is recorded here
and carried out there (``fleet.peers``; central/remote.py applies it).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import partial
from typing import Any

from central import store
from central.chargepoints import ChargePoints
from central.errors import InvalidInput
from central.fleet import SOURCE, Fleet
from central.model import HOLD_OPERATOR, ChargePointView
from central.sessions import Sessions
from central.states import CPState, Trigger
from central.store import Ticket
from common.events import Event, EventType

__all__ = ["Operator"]

MAX_PRICE = Decimal(100)


class Operator:
    """What an operator may do to the network."""

    def __init__(self, fleet: Fleet, chargepoints: ChargePoints, sessions: Sessions) -> None:
        self._fleet = fleet
        self._chargepoints = chargepoints
        self._sessions = sessions

    def _targets(self, cp_id: str | None) -> list[ChargePointView]:
        return [self._fleet.get(cp_id)] if cp_id else list(self._fleet.cps.values())

    async def stop(self, cp_id: str | None, actor: str, source_ip: str | None = None) -> int:
        """Stop one CP (or all): a running supply ends now; the CP shows Out of Order."""
        targets = self._targets(cp_id)
        self.apply_hold(targets, True)
        await self._record_hold(targets, True, "stop", actor, source_ip)
        self._tell_peers(cp_id, targets, True)
        return len(targets)

    async def resume(self, cp_id: str | None, actor: str, source_ip: str | None = None) -> int:
        """Lift the operator's stop; a CP nothing else holds is ACTIVATED again."""
        targets = self._targets(cp_id)
        self.apply_hold(targets, False)
        await self._record_hold(targets, False, "resume", actor, source_ip)
        self._tell_peers(cp_id, targets, False)
        return len(targets)

    def apply_hold(self, cps: list[ChargePointView], stopped: bool) -> None:
        """Stop or resume the CPs served here (a remote CP's owner does its own)."""
        for cp in cps:
            if cp.remote:
                continue
            if stopped:
                cp.holds.add(HOLD_OPERATOR)
                self._sessions.end_supply(cp, "stopped_by_operator")
                if cp.state in (CPState.ACTIVATED, CPState.SUPPLYING, CPState.STOPPED):
                    self._fleet.fire(cp, Trigger.STOP, "stopped by operator")
            else:
                cp.holds.discard(HOLD_OPERATOR)
                if cp.state is CPState.STOPPED and not cp.holds:
                    self._fleet.fire(cp, Trigger.RESUME, "resumed by operator")

    def _tell_peers(self, cp_id: str | None, cps: list[ChargePointView], stopped: bool) -> None:
        # After the durable record: an owner that misses the message reads the hold from
        # the database when it next takes the CP.
        peers = self._fleet.peers
        if peers is not None and any(cp.remote for cp in cps):
            peers.tell("hold", {"cp_id": cp_id, "stopped": stopped})

    async def _record_hold(
        self,
        cps: list[ChargePointView],
        stopped: bool,
        command: str,
        actor: str,
        source_ip: str | None,
    ) -> None:
        ids = [cp.id for cp in cps]
        await self._fleet.writer.call(
            partial(store.persist_operator_stop, cp_ids=ids, stopped=stopped)
        )
        await self._fleet.record(
            Event(
                EventType.OPERATOR_COMMAND,
                SOURCE,
                {"command": command, "cp_ids": ids[:50], "count": len(ids)},
                cp_id=ids[0] if len(ids) == 1 else None,
                actor=actor,
                source_ip=source_ip,
            )
        )

    async def revoke_key(self, cp_id: str, actor: str, source_ip: str | None = None) -> None:
        """Invalidate the CP's session key: STOPPED until its monitor re-authenticates."""
        cp = self._fleet.get(cp_id)
        if cp.remote and self._fleet.peers is not None:
            self._fleet.peers.tell("revoke", {"cp_id": cp.id})
        else:
            self._chargepoints.revoke(cp)
        await self._fleet.record(
            Event(
                EventType.CP_KEY_REVOKED, SOURCE, {}, cp_id=cp.id, actor=actor, source_ip=source_ip
            )
        )

    async def set_price(
        self, cp_id: str, price: Any, actor: str, source_ip: str | None = None
    ) -> Decimal:
        """Set the CP's price in €/kWh (0 to 100, four places); later sessions pay it.

        Raises:
            InvalidInput: ``invalid_value``.
            NotFound: ``unknown_cp``.
        """
        cp = self._fleet.get(cp_id)
        try:
            value = Decimal(str(price))
        except InvalidOperation:
            value = Decimal(-1)
        if isinstance(price, bool) or not value.is_finite() or not 0 <= value <= MAX_PRICE:
            raise InvalidInput(f"price must be a number of €/kWh between 0 and {MAX_PRICE}")
        value = value.quantize(Decimal("0.0001"))
        old = cp.price
        cp.price = value
        await self._fleet.writer.call(partial(store.persist_price, cp_id=cp.id, price=value))
        if self._fleet.peers is not None:
            self._fleet.peers.tell("price", {"cp_id": cp.id, "price": str(value)})
        await self._fleet.record(
            Event(
                EventType.CP_PRICE_CHANGED,
                SOURCE,
                {"from": float(old), "to": float(value)},
                cp_id=cp.id,
                actor=actor,
                source_ip=source_ip,
            )
        )
        return value

    async def stop_session(self, session_id: str, actor: str) -> Ticket:
        """End a session now (live, or left open by a crash); returns its ticket."""
        return await self._sessions.stop(session_id, actor)
