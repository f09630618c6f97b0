"""Central's domain with fakes: links that record, a writer that keeps rows in memory, a clock.

The fake writer runs each unit of work (a ``partial`` of a :mod:`central.store`
function) against a few dictionaries, enough for the domain's rules: sessions are
authorised, started, metered, cancelled and settled exactly once, as the real
``store.settle`` guarantees with its conditional UPDATE.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from central import routing
from central.network import Network
from central.reads import CPRow, OpenSession
from central.routing import Peer
from central.states import CPState
from central.store import Ticket, compute_total
from common.events import Event, EventType
from common.protocol.handshake import Role
from common.protocol.messages import Message, MessageType
from tests.support.clock import FakeClock

T = TypeVar("T")
M = MessageType
START = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@dataclass
class FakeLink:
    peer_ip: str = "192.0.2.7"
    sent: list[tuple[MessageType, dict[str, Any]]] = field(default_factory=list)
    closed: str | None = None

    def send(self, msg_type: MessageType, body: Any) -> None:
        self.sent.append((msg_type, dict(body)))

    def close(self, reason: str) -> None:
        self.closed = reason

    def of(self, msg_type: MessageType) -> list[dict[str, Any]]:
        return [body for t, body in self.sent if t is msg_type]

    def last(self, msg_type: MessageType) -> dict[str, Any]:
        found = self.of(msg_type)
        assert found, f"no {msg_type} in {self.sent}"
        return found[-1]

    def errors(self) -> list[str]:
        return [body["code"] for body in self.of(M.ERROR)]


class FakeWriter:
    """Records every unit of work; keeps session rows and events like the database would."""

    def __init__(self, clock: FakeClock) -> None:
        self._clock = clock
        self.work: list[tuple[str, dict[str, Any]]] = []
        self.rows: dict[str, dict[str, Any]] = {}
        self.events: list[Event] = []
        self.settlements: list[str] = []  # session ids, once per real settlement

    def submit(self, fn: Callable[..., T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            future.set_result(self._apply(fn))
        except Exception as exc:
            future.set_exception(exc)
        return future

    async def call(self, fn: Callable[..., T]) -> T:
        return self.submit(fn).result()

    def names(self) -> list[str]:
        return [name for name, _ in self.work]

    def of(self, event_type: EventType) -> list[Event]:
        return [e for e in self.events if e.type is event_type]

    def _apply(self, fn: Any) -> Any:
        name, kw = fn.func.__name__, dict(fn.keywords)
        self.work.append((name, kw))
        row = self.rows.get(kw.get("session_id", ""))
        if name == "record":
            self.events.append(kw["event"])
        elif name == "persist_state":
            self.events.append(Event(EventType.CP_STATE_CHANGED, "central", kw, cp_id=kw["cp_id"]))
        elif name == "persist_authorized":
            self.rows[kw["session_id"]] = {
                **kw,
                "status": "authorized",
                "kwh": Decimal(0),
                "started_at": None,
            }
        elif name == "persist_started" and row and row["status"] == "authorized":
            row.update(status="supplying", started_at=self._clock.wall())
        elif name == "persist_progress" and row is None:
            progress = kw["progress"]
            row = self.rows.get(progress["session_id"])
            if row and row["status"] == "supplying":
                row["kwh"] = Decimal(str(progress["kwh"]))
        elif name == "persist_cancelled" and row and row["status"] == "authorized":
            row["status"] = "cancelled"
        elif name == "settle":
            return self._settle(**kw)
        elif name in ("pending_tickets", "history"):
            return []
        return None

    def _settle(
        self,
        session_id: str,
        kwh: Decimal,
        reason: str,
        source: str = "central",
        cp_id: str | None = None,
    ) -> tuple[Ticket, bool]:
        row = self.rows.get(session_id)
        if row is None or (cp_id is not None and row["cp_id"] != cp_id):
            raise LookupError(session_id)
        first = row["status"] in ("authorized", "supplying")
        if first:
            row.update(status="ended", kwh=max(kwh, row["kwh"]), reason=reason)
            self.settlements.append(session_id)
        ticket = Ticket(
            session_id,
            row["cp_id"],
            row["driver_id"],
            row["started_at"],
            self._clock.wall(),
            row["kwh"],
            row["price"],
            compute_total(row["kwh"], row["price"]),
            row.get("reason", ""),
        )
        return ticket, first


def fl(peer: Peer) -> FakeLink:
    """The fake link behind a peer."""
    assert isinstance(peer.link, FakeLink)
    return peer.link


@dataclass
class ChargePoint:
    """A CP's two authenticated connections."""

    monitor: Peer
    engine: Peer

    @property
    def mlink(self) -> FakeLink:
        return fl(self.monitor)

    @property
    def elink(self) -> FakeLink:
        return fl(self.engine)


class World:
    """A Network over fakes, with CPs CP1..CPn (location Madrid, CP3+ Oslo, 0.40 €/kWh)."""

    def __init__(
        self,
        cps: int = 2,
        *,
        orphans: list[OpenSession] | None = None,
        alerts: list[str] | None = None,
        authorize_timeout: float = 1.0,
    ) -> None:
        self.clock = FakeClock(wall_start=START)
        self.writer = FakeWriter(self.clock)
        self.net = Network(
            self.writer,
            self.clock,
            heartbeat_interval=1.0,
            heartbeat_timeout=5.0,
            authorize_timeout=authorize_timeout,
            plug_timeout=60.0,
            max_kw=Decimal(50),
            wall=self.clock.wall,
        )
        rows = [
            CPRow(f"CP{i}", "Madrid" if i < 3 else "Oslo", Decimal("0.40"), True, False, START)
            for i in range(1, cps + 1)
        ]
        self.net.chargepoints.load(rows, alerts or [], orphans or [])

    def state(self, cp_id: str) -> CPState:
        return self.net.fleet.cps[cp_id].state

    def connect(self, cp_id: str, engine_ok: bool = True) -> ChargePoint:
        cp = ChargePoint(
            Peer(Role.MONITOR, cp_id, FakeLink()), Peer(Role.ENGINE, cp_id, FakeLink())
        )
        self.net.chargepoints.monitor_up(cp_id, cp.monitor.link, b"k" * 32, engine_ok)
        self.net.chargepoints.engine_up(cp_id, cp.engine.link)
        return cp

    def driver(self, driver_id: str = "D1") -> Peer:
        peer = Peer(Role.DRIVER, driver_id, FakeLink())
        self.net.fleet.driver_up(driver_id, peer.link)
        return peer

    async def send(self, peer: Peer, msg_type: MessageType, **body: Any) -> None:
        msg = Message(msg_type, 1, 0.0, body)
        await routing.dispatch(self.net, peer, msg, routing.route(peer.role, msg_type))

    async def authorize(self, asker: Peer, cp: ChargePoint, **body: Any) -> str:
        """Ask for a charge (driver or engine), let the CP's engine accept; the session id."""
        if asker.role is Role.DRIVER:
            body.setdefault("cp_id", cp.engine.id)
        seen = len(cp.elink.of(M.AUTHORIZE_SUPPLY))
        task = asyncio.create_task(self.send(asker, M.CHARGE_REQUEST, **body))
        session_id = await self.authorization_at(cp, seen)
        await self.send(cp.engine, M.CHARGE_AUTHORIZED, session_id=session_id)
        await task
        return session_id

    async def authorization_at(self, cp: ChargePoint, seen: int = 0) -> str:
        """The id of the next authorisation (after the ``seen`` first) the CP's engine gets."""
        for _ in range(100):
            asked = cp.elink.of(M.AUTHORIZE_SUPPLY)
            if len(asked) > seen:
                return str(asked[seen]["session_id"])
            await asyncio.sleep(0)
        raise AssertionError(f"no authorize_supply reached {cp.engine.id}")

    async def supplying(self, driver: Peer, cp: ChargePoint, kwh: float = 0.0) -> str:
        """A session of ``driver`` supplying at ``cp`` with ``kwh`` metered."""
        session_id = await self.authorize(driver, cp)
        await self.send(cp.engine, M.SUPPLY_STARTED, session_id=session_id)
        if kwh:
            self.clock.advance(60)
            await self.send(cp.engine, M.TELEMETRY, session_id=session_id, kwh=kwh, kw=11.0)
        return session_id


def run(coro: Any) -> Any:
    return asyncio.run(coro)
