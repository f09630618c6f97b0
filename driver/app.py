"""The driver's commands: request, run, list, history, status (asyncio, over CentralLink)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from common.protocol.messages import Message, MessageType
from driver.charge import ChargeTracker, Outcome, OutcomeKind, Phase, Step, StepKind
from driver.errors import (
    EXIT_DENIED,
    EXIT_GAVE_UP,
    EXIT_OK,
    CentralDown,
    DriverError,
)
from driver.link import ANSWER_TIMEOUT, ConnectionClosed, Link
from driver.render import (
    cp_table,
    format_eur,
    format_kwh,
    format_price,
    history_table,
    outcome_table,
    session_line,
    ticket_line,
)
from driver.screen import Screen
from driver.servicefile import Service, ServiceFile

__all__ = ["DriverApp", "Timing", "exit_code_for", "interactive"]

MAX_RECONNECTS = 5  # per charge: two ev-driver processes of one driver would evict each other


@dataclass(frozen=True)
class Timing:
    """How long to wait for what (seconds).

    Args:
        plug_wait: cap on the wait for the vehicle after authorisation; Central's own
            plug timeout normally ends it first, with a denial.
        check_every: after this much silence, ask Central whether the charge is alive.
        answer: cap on the wait for Central's answer to a request.
    """

    plug_wait: float = 600.0
    check_every: float = 15.0
    answer: float = ANSWER_TIMEOUT


def exit_code_for(outcome: Outcome) -> int:
    return {
        OutcomeKind.CHARGED: EXIT_OK,
        OutcomeKind.GAVE_UP: EXIT_GAVE_UP,
    }.get(outcome.kind, EXIT_DENIED)


class DriverApp:
    """Runs one command over one link to Central, showing everything on a Screen.

    Args:
        follow_hint: the command line that follows a running charge, for the user.
        confirm: asks the user a yes/no question (None: never ask, e.g. not a terminal).
    """

    def __init__(
        self,
        link: Link,
        screen: Screen,
        timing: Timing = Timing(),
        *,
        follow_hint: str = "ev-driver status --follow",
        confirm: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.link = link
        self.screen = screen
        self.timing = timing
        self._hint = follow_hint
        self._confirm = confirm
        self._clock = clock
        self._sleep = sleep

    async def execute(self, command: Callable[[], Awaitable[int]]) -> int:
        """Connect, run ``command``, close; a DriverError becomes its message and exit code."""
        try:
            await self.link.open()
            return await command()
        except ConnectionClosed as exc:  # closed again right after a reconnection
            return self._fail(CentralDown(f"Central closed the connection: {exc}"))
        except DriverError as exc:
            return self._fail(exc)
        finally:
            await self.link.close()

    def _fail(self, error: DriverError) -> int:
        self.screen.end_progress()
        self.screen.warn(str(error))
        return error.exit_code

    # ------------------------------------------------------------ the commands
    async def list_cps(self) -> int:
        reply = await self._ask(MessageType.LIST_CPS, MessageType.CP_LIST)
        cps = reply.body.get("cps") or []
        if cps:
            self.screen.show(cp_table(cps))
        else:
            self.screen.say("no charge point is free right now")
        return EXIT_OK

    async def history(self) -> int:
        reply = await self._ask(MessageType.HISTORY, MessageType.HISTORY)
        tickets = reply.body.get("tickets") or []
        if tickets:
            self.screen.show(history_table(tickets))
        else:
            self.screen.say("no tickets yet")
        return EXIT_OK

    async def status(self, follow: bool = False) -> int:
        """Show missed tickets and a running charge; follow it to its ticket if asked."""
        session = await self._catch_up()
        if session is None:
            self.screen.say("nothing to follow" if follow else "no charge in progress")
            return EXIT_OK
        if not follow and self._confirm is not None:
            follow = await asyncio.to_thread(self._confirm, "Follow it until its ticket?")
        if not follow:
            self.screen.say(f"follow it with: {self._hint}")
            return EXIT_OK
        tracker = ChargeTracker.adopt(session, self._clock())
        if tracker.phase is Phase.SUPPLYING:
            self._progress(tracker)
        return exit_code_for(await self._follow(tracker))

    async def request(self, cp_id: str, target_kwh: float | None = None) -> int:
        if await self._catch_up() is not None:
            return self._refuse_while_charging()
        return exit_code_for(await self.charge(cp_id, target_kwh))

    async def run(self, services: ServiceFile, pause: float, name: str = "the file") -> int:
        """Every service in turn, ``pause`` seconds apart; a summary table at the end.

        Denied services do not change the exit code: the file ran. Only losing Central
        (or being refused by it) stops the run early, with that error's exit code.
        """
        for problem in services.problems:
            self.screen.warn(f"{name}: {problem} (skipped)")
        todo = services.services
        if not todo:
            self.screen.say(f"no services in {name}")
            return EXIT_OK
        if await self._catch_up() is not None:
            return self._refuse_while_charging()
        outcomes: list[tuple[int, Outcome]] = []
        try:
            for number, service in enumerate(todo, start=1):
                outcome = await self._service(number, len(todo), service)
                outcomes.append((service.line, outcome))
                if number < len(todo):
                    self.screen.say(f"next service in {pause:g} s")
                    await self._pause(pause)
        except DriverError as exc:
            self.screen.end_progress()
            self.screen.warn(str(exc))
            for service in todo[len(outcomes) :]:
                outcomes.append((service.line, Outcome(service.cp_id, OutcomeKind.NOT_RUN)))
            self.screen.show(outcome_table(outcomes))
            return exc.exit_code
        self.screen.show(outcome_table(outcomes))
        return EXIT_OK

    # ------------------------------------------------------------ one charge
    async def charge(self, cp_id: str, target_kwh: float | None = None) -> Outcome:
        """Request a charge at ``cp_id`` and follow it to its end."""
        body: dict[str, Any] = {"cp_id": cp_id}
        if target_kwh is not None:
            body["target_kwh"] = target_kwh
        target = f" (target {target_kwh:g} kWh)" if target_kwh is not None else ""
        self.screen.say(f"{cp_id}: requesting a charge{target}")
        try:
            self.link.send(MessageType.CHARGE_REQUEST, body)
        except ConnectionClosed:
            await self._reconnect()
            self.link.send(MessageType.CHARGE_REQUEST, body)
        return await self._follow(ChargeTracker(cp_id))

    async def _follow(self, tracker: ChargeTracker) -> Outcome:
        reconnects = 0
        plug_deadline: float | None = None
        announce = False  # show "still charging" only after a reconnection
        try:
            while not tracker.done:
                now = self._clock()
                if tracker.phase is Phase.AUTHORIZED and plug_deadline is None:
                    plug_deadline = now + self.timing.plug_wait
                timeout = self._timeout(tracker, now, plug_deadline)
                try:
                    msg = await self.link.recv(timeout)
                except TimeoutError:
                    if tracker.phase is Phase.REQUESTED:
                        return self._gave_up(
                            tracker, f"no answer from Central within {timeout:g} s"
                        )
                    if plug_deadline is not None and self._clock() >= plug_deadline:
                        return self._gave_up(
                            tracker,
                            f"vehicle not plugged in within {self.timing.plug_wait:g} s"
                            " (--plug-wait)",
                        )
                    self.link.send(MessageType.STATUS, {})  # silence: is the charge alive?
                    continue
                except ConnectionClosed:
                    reconnects += 1
                    if reconnects > MAX_RECONNECTS:
                        raise CentralDown(
                            f"lost the connection to Central {reconnects} times; giving up"
                        ) from None
                    self.screen.end_progress()
                    self.screen.warn("lost the connection to Central; reconnecting")
                    await self._reconnect()
                    self.link.send(MessageType.STATUS, {})
                    announce = True
                    continue
                if msg.type is MessageType.STATUS:
                    for found in tracker.reconcile(msg.body, self._clock()):
                        if found.kind is not StepKind.RESUMED or announce:
                            self._show(found, tracker)
                    announce = False
                    continue
                step = tracker.feed(msg, self._clock())
                if step is not None:
                    self._show(step, tracker)
        except asyncio.CancelledError:  # Ctrl+C: this process stops, the charge does not
            if tracker.phase in (Phase.AUTHORIZED, Phase.SUPPLYING):
                self.screen.end_progress()
                self.screen.warn(
                    f"stopped following; the charge at {tracker.cp_id} goes on at Central"
                    f" - follow it again with: {self._hint}"
                )
            raise
        self.screen.end_progress()
        return tracker.outcome()

    def _timeout(self, tracker: ChargeTracker, now: float, plug_deadline: float | None) -> float:
        if tracker.phase is Phase.REQUESTED:
            return self.timing.answer
        if plug_deadline is not None and tracker.phase is Phase.AUTHORIZED:
            return max(0.0, min(self.timing.check_every, plug_deadline - now))
        return self.timing.check_every

    def _gave_up(self, tracker: ChargeTracker, reason: str) -> Outcome:
        self.screen.end_progress()
        self.screen.say(f"{tracker.cp_id}: gave up: {reason}", style="red")
        return tracker.give_up(reason)

    async def _service(self, number: int, total: int, service: Service) -> Outcome:
        target = f", target {service.target_kwh:g} kWh" if service.target_kwh else ""
        self.screen.say(f"service {number}/{total} (line {service.line}): {service.cp_id}{target}")
        outcome = await self.charge(service.cp_id, service.target_kwh)
        amounts = f" {format_kwh(outcome.kwh)} {format_eur(outcome.eur)}" if outcome.ok else ""
        self.screen.say(f"service {number}/{total} done: {outcome.describe()}{amounts}")
        return outcome

    async def _pause(self, seconds: float) -> None:
        # asyncio may wake a hair early; the gap between services is never shorter.
        deadline = self._clock() + seconds
        while (left := deadline - self._clock()) > 0:
            await self._sleep(left)

    # ------------------------------------------------------------ helpers
    async def _reconnect(self) -> None:
        await self.link.reconnect()

    async def _ask(self, msg_type: MessageType, answer: MessageType) -> Message:
        """A query; if the connection drops, reconnect once and ask again."""
        try:
            return await self.link.ask(msg_type, {}, {answer}, on_other=self._stray)
        except ConnectionClosed:
            self.screen.warn("lost the connection to Central; reconnecting")
            await self._reconnect()
        return await self.link.ask(msg_type, {}, {answer}, on_other=self._stray)

    async def _catch_up(self) -> Mapping[str, Any] | None:
        """Ask Central's ``status``: show missed tickets; return a charge still running."""
        reply = await self._ask(MessageType.STATUS, MessageType.STATUS)
        self._show_missed(reply.body.get("missed_tickets") or [])
        session = reply.body.get("session")
        if session:
            self.screen.say(f"charge in progress: {session_line(session)}", style="yellow")
            return dict(session)
        return None

    def _refuse_while_charging(self) -> int:
        self.screen.say(
            "a charge of yours is still in progress; one charge at a time"
            f" - follow it with: {self._hint}",
            style="red",
        )
        return EXIT_DENIED

    def _show_missed(self, tickets: Sequence[Mapping[str, Any]]) -> None:
        for ticket in tickets:
            self.screen.say(f"missed while away: {ticket_line(ticket)}", style="bold green")

    def _stray(self, msg: Message) -> None:
        # Central marks a ticket delivered once sent: it must never be dropped unseen.
        if msg.type is MessageType.TICKET:
            self._show_missed([msg.body])

    def _progress(self, tracker: ChargeTracker) -> None:
        self.screen.progress(lambda: tracker.progress(self._clock()))

    def _show(self, step: Step, tracker: ChargeTracker) -> None:
        cp, body = step.cp_id, step.body
        match step.kind:
            case StepKind.AUTHORIZED:
                self.screen.say(
                    f"{cp}: authorised at {format_price(body.get('price_eur_kwh'))}"
                    f" (session {body.get('session_id')}); waiting for the vehicle",
                    style="green",
                )
            case StepKind.DENIED:
                self.screen.end_progress()
                self.screen.say(f"{cp}: denied: {body.get('reason') or 'refused'}", style="red")
            case StepKind.PLUGGED:
                self.screen.say(f"{cp}: vehicle plugged in, charging", style="green")
            case StepKind.STARTED:
                self.screen.say(
                    f"{cp}: authorised (session {body.get('session_id')});"
                    " vehicle plugged in, charging",
                    style="green",
                )
            case StepKind.PROGRESS:
                self._progress(tracker)
            case StepKind.TICKET:
                self.screen.end_progress()
                self.screen.say(ticket_line(body), style="bold green")
            case StepKind.OTHER_TICKET:
                self._show_missed([body])
            case StepKind.RESUMED:
                self.screen.say(f"Central still holds it: {session_line(body)}", style="yellow")
                if tracker.phase is Phase.SUPPLYING:
                    self._progress(tracker)
            case StepKind.LOST:
                self.screen.end_progress()
                self.screen.say(f"{cp}: {body.get('reason')}", style="red")


def interactive() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()
