"""An in-memory Central for the driver's commands: scripted answers, a fake clock."""

from __future__ import annotations

import asyncio
import io
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from common.config import HostPort
from common.protocol.messages import Message, MessageType
from driver.app import DriverApp, Timing
from driver.link import CentralLink, ConnectionClosed
from driver.screen import PlainScreen
from tests.support.clock import FakeClock

T = MessageType


@dataclass
class Silence:
    """Nothing arrives for this many seconds (of the fake clock)."""

    seconds: float


Item = Message | Silence | BaseException
Script = Callable[[MessageType, dict[str, Any]], Iterable[Item]]


def msg(msg_type: MessageType, **body: Any) -> Message:
    return Message(msg_type, 1, 0.0, body)


class FakeLink(CentralLink):
    """A CentralLink whose Central answers from ``script``; ``ask`` is the real one.

    ``script(type, body)`` returns what Central sends back for each message the
    driver sends: messages, ``Silence`` and exceptions (``ConnectionClosed``) in order.
    """

    def __init__(
        self, clock: FakeClock, script: Script, open_errors: Iterable[Exception | None] = ()
    ) -> None:
        super().__init__(HostPort("127.0.0.1", 7000), "D1", "secret", retry_for=0, notify=print)
        self.clock = clock
        self.script = script
        self.inbox: deque[Item] = deque()
        self.sent: list[tuple[MessageType, dict[str, Any]]] = []
        self.opened = 0
        self.connected = False
        self._open_errors = deque(open_errors)

    async def open(self) -> None:
        self.opened += 1
        error = self._open_errors.popleft() if self._open_errors else None
        if error is not None:
            raise error
        self.connected = True

    async def close(self) -> None:
        self.connected = False

    def push(self, *items: Item) -> None:
        self.inbox.extend(items)

    def send(self, msg_type: MessageType, body: Any = None) -> None:
        if not self.connected:
            raise ConnectionClosed("not connected")
        self.sent.append((msg_type, dict(body or {})))
        self.inbox.extend(self.script(msg_type, dict(body or {})))

    async def recv(self, timeout: float | None = None) -> Message:
        await asyncio.sleep(0)
        while self.inbox:
            item = self.inbox[0]
            if isinstance(item, Silence):
                if timeout is not None and item.seconds > timeout:
                    item.seconds -= timeout
                    self.clock.now += timeout
                    raise TimeoutError
                self.clock.now += item.seconds
                self.inbox.popleft()
                continue
            self.inbox.popleft()
            if isinstance(item, BaseException):
                self.connected = False
                raise item
            return item
        if timeout is None:
            raise AssertionError("the driver would wait forever: the script ran out")
        self.clock.now += timeout
        raise TimeoutError

    def types_sent(self) -> list[MessageType]:
        return [t for t, _ in self.sent]


class Harness:
    """A DriverApp on a FakeLink, printing plain lines into strings."""

    def __init__(
        self,
        script: Script,
        timing: Timing | None = None,
        open_errors: Iterable[Exception | None] = (),
    ) -> None:
        self.clock = FakeClock()
        self.link = FakeLink(self.clock, script, open_errors)
        self.out, self.err = io.StringIO(), io.StringIO()
        start = datetime(2026, 5, 4, 10, 0, 0).astimezone()
        screen = PlainScreen(
            self.out, self.err, now=lambda: start + timedelta(seconds=self.clock.now - 1000)
        )
        self.app = DriverApp(
            self.link,
            screen,
            timing or Timing(),
            follow_hint="ev-driver ... status --follow",
            clock=self.clock,
            sleep=self.clock.sleep,
        )

    def run(self, command: Callable[[DriverApp], Any]) -> int:
        return asyncio.run(self.app.execute(lambda: command(self.app)))

    @property
    def output(self) -> list[str]:
        """stdout lines without their time stamps."""
        return [line.split(" ", 1)[1] for line in self.out.getvalue().splitlines() if " " in line]

    @property
    def errors(self) -> list[str]:
        return [line.split(" ", 1)[1] for line in self.err.getvalue().splitlines()]


class ScriptedCentral:
    """Central's side of the script: answers queries, plays one scenario per request.

    Args:
        charges: per CP id, the scenarios (lists of items) its requests get, in order.
        statuses: bodies of the ``status`` answers, in order (then: nothing pending).
        after_status: items Central sends after the n-th ``status`` answer (from 0).
    """

    def __init__(
        self,
        charges: dict[str, list[list[Item]]] | None = None,
        statuses: Iterable[dict[str, Any]] = (),
        cps: Iterable[dict[str, Any]] = (),
        tickets: Iterable[dict[str, Any]] = (),
        after_status: dict[int, list[Item]] | None = None,
    ) -> None:
        self.after_status = after_status or {}
        self.answered = 0
        self.charges = {cp: deque(runs) for cp, runs in (charges or {}).items()}
        self.statuses = deque(statuses)
        self.cps = list(cps)
        self.tickets = list(tickets)

    def __call__(self, msg_type: MessageType, body: dict[str, Any]) -> Iterable[Item]:
        if msg_type is T.STATUS:
            answer = self.statuses.popleft() if self.statuses else {}
            self.answered += 1
            return [
                msg(T.STATUS, **{"session": None, "missed_tickets": [], **answer}),
                *self.after_status.get(self.answered - 1, []),
            ]
        if msg_type is T.LIST_CPS:
            return [msg(T.CP_LIST, cps=self.cps)]
        if msg_type is T.HISTORY:
            return [msg(T.HISTORY, tickets=self.tickets)]
        if msg_type is T.CHARGE_REQUEST:
            runs = self.charges.get(body["cp_id"])
            if runs:
                return runs.popleft()
            return [msg(T.CHARGE_DENIED, cp_id=body["cp_id"], reason="unknown charge point")]
        return []


def ticket(cp_id: str, session_id: str, kwh: float = 1.0, price: float = 0.4) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "cp_id": cp_id,
        "driver_id": "D1",
        "start": "2026-05-04T08:00:00+00:00",
        "end": "2026-05-04T08:00:03+00:00",
        "kwh": kwh,
        "price_eur_kwh": price,
        "total_eur": round(kwh * price, 2),
        "reason": "unplugged",
    }


def charged(cp_id: str, session_id: str, readings: int = 2, price: float = 0.4) -> list[Item]:
    """A charge that goes well: authorised, plugged after 2 s, a reading a second, ticket."""
    items: list[Item] = [
        msg(T.CHARGE_AUTHORIZED, session_id=session_id, cp_id=cp_id, price_eur_kwh=price),
        Silence(2),
        msg(T.SUPPLY_STARTED, session_id=session_id, cp_id=cp_id),
    ]
    for n in range(1, readings + 1):
        items += [
            Silence(1),
            msg(
                T.TELEMETRY,
                session_id=session_id,
                cp_id=cp_id,
                kw=11.0,
                kwh=0.5 * n,
                eur=round(0.5 * n * price, 2),
            ),
        ]
    items.append(msg(T.TICKET, **ticket(cp_id, session_id, 0.5 * readings, price)))
    return items


__all__ = [
    "FakeLink",
    "Harness",
    "ScriptedCentral",
    "Silence",
    "T",
    "charged",
    "msg",
    "ticket",
]
