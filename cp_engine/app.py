"""The engine's composition root: charger, monitor link, Central link, menu, clock."""

from __future__ import annotations

import asyncio
from typing import Any

from common.chargepoint.errors import MenuError
from common.chargepoint.startup import start_console
from common.chargepoint.terminal import Level, Screen
from common.errors import ConfigError
from common.protocol.errors import MessageError
from common.protocol.messages import ErrorBody, ErrorCode, Message, MessageType
from common.ready import announce
from cp_engine.central_link import CentralConnector
from cp_engine.charger import Charger
from cp_engine.errors import JournalError
from cp_engine.journal import Journal
from cp_engine.local_link import MonitorLinkServer
from cp_engine.menu import ENGINE_MENU
from cp_engine.settings import EngineSettings

__all__ = ["Engine", "run_engine"]

AUTO_PLUG_DELAY = 1.0  # seconds between an authorisation and the simulated plug-in
TICK = 1.0  # telemetry period (real seconds)
SHUTDOWN_TICKET_WAIT = 2.0


class Engine:
    """One ``ev-cp-engine`` process; implements the monitor link's handler."""

    def __init__(self, settings: EngineSettings, pairing_key: bytes, screen: Screen) -> None:
        self.settings = settings
        self.screen = screen
        self.charger = Charger(
            Journal(settings.journal_file),
            self._to_central,
            screen.say,
            kw=settings.kw,
            speed=settings.speed,
            default_target=settings.target_kwh,
        )
        self.central = CentralConnector(
            settings.central, settings.cp_id, self._from_central, self.charger.connected, screen.say
        )
        self.local = MonitorLinkServer(settings.cp_id, pairing_key, self, screen.say)
        self._quit = asyncio.Event()
        self._failure: BaseException | None = None

    # ------------------------------------------------------- monitor link
    def health(self) -> dict[str, Any]:
        if self.charger.healthy:
            return {"ok": True}
        return {"ok": False, "reason": self.charger.fault}

    def session_key(self, key: bytes) -> None:
        if self.central.set_key(key):
            self.screen.say(Level.INFO, "Session key received from the monitor")

    def technician_health(self, ok: bool, reason: str) -> None:
        self._guard(self._set_health, ok, reason or "marked KO from the monitor")

    def monitor_changed(self, connected: bool) -> None:
        self.charger.set_supervised(connected)

    def _set_health(self, ok: bool, reason: str) -> None:
        if self.charger.set_health(ok, reason):
            self.local.push(MessageType.ENGINE_STATUS, self.health())

    # ------------------------------------------------------------ Central
    def _to_central(self, msg_type: MessageType, body: dict[str, Any]) -> bool:
        return self.central.send(msg_type, body)

    def _from_central(self, msg: Message) -> None:
        self._guard(self._dispatch, msg)

    def _dispatch(self, msg: Message) -> None:
        body = msg.body
        if msg.type is MessageType.AUTHORIZE_SUPPLY:
            if self.charger.authorize(body) and self.settings.auto_plug:
                asyncio.get_running_loop().call_later(
                    AUTO_PLUG_DELAY, self._guard, self.charger.plug, str(body["session_id"])
                )
        elif msg.type is MessageType.STOP:
            self.charger.stop(body)
        elif msg.type is MessageType.TICKET:
            self.charger.ticket(body)
        elif msg.type is MessageType.CHARGE_DENIED:
            self.screen.say(Level.WARN, f"Charge denied by Central: {body.get('reason')}")
        elif msg.type is MessageType.ERROR:
            try:
                error = ErrorBody.parse(body)
            except MessageError:
                error = ErrorBody(ErrorCode.INTERNAL, "Central sent a malformed error")
            self.charger.refused(error)
        elif msg.type is MessageType.RESUME:
            self.screen.say(Level.INFO, "Central: resumed")

    # --------------------------------------------------------------- menu
    def command(self, line: str) -> None:
        try:
            cmd = ENGINE_MENU.parse(line)
        except MenuError as exc:
            self.screen.say(Level.WARN, str(exc))
            return
        c = self.charger
        actions = {
            "plug": c.plug,
            "unplug": c.unplug,
            "ko": lambda: self._set_health(False, "fault reported at the charger"),
            "ok": lambda: self._set_health(True, ""),
            "request": lambda: c.request_charge(cmd.number),
            "status": self.show_status,
            "help": self.show_help,
            "quit": self._quit.set,
        }
        self._guard(actions[cmd.name])

    def show_status(self) -> None:
        rows = [
            ("Charge point", self.settings.cp_id),
            ("Central", "connected" if self.central.connected else "not connected"),
            *self.charger.status_lines(),
        ]
        self.screen.table(f"Engine {self.settings.cp_id}", rows)

    def show_help(self) -> None:
        self.screen.say(
            Level.INFO, "Keys (or lines on stdin):\n" + "\n".join(ENGINE_MENU.help_lines())
        )

    # ---------------------------------------------------------------- run
    def _guard(self, fn: Any, *args: Any) -> None:
        """Run a handler; a journal that cannot be written stops the engine."""
        try:
            fn(*args)
        except JournalError as exc:
            self.screen.say(Level.BAD, f"{exc}: stopping the engine, metering is not safe")
            self._failure = exc
            self._quit.set()

    async def _ticker(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += TICK
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            self._guard(self.charger.tick)

    async def run(self) -> int:
        try:
            self.charger.recover()
        except JournalError as exc:
            raise ConfigError("journal", str(exc)) from None
        try:
            addr = await self.local.start(self.settings.listen)
        except OSError as exc:
            raise ConfigError(
                "--listen", f"cannot listen on {self.settings.listen}: {exc.strerror}"
            ) from None
        self.screen.say(
            Level.INFO,
            f"Engine {self.settings.cp_id} ready: monitor link on {addr}, "
            f"Central at {self.settings.central}; press ? for the menu",
        )
        announce("cp_engine", cp=self.settings.cp_id, listen=addr)
        reader = start_console(ENGINE_MENU, self.command, self._quit.set)
        tasks = [asyncio.create_task(self.central.run()), asyncio.create_task(self._ticker())]
        try:
            await self._quit.wait()
            if self._failure is None:
                await self._shutdown()
        finally:
            reader.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.central.close()
            await self.local.close()
        self.screen.say(Level.INFO, "Engine stopped")
        return 1 if self._failure else 0

    async def _shutdown(self) -> None:
        """End a running supply and give Central a moment to answer with its ticket."""
        self._guard(self.charger.shutdown)
        deadline = asyncio.get_running_loop().time() + SHUTDOWN_TICKET_WAIT
        while self.charger.records.unsettled and self.central.connected:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        if self.charger.records.unsettled:
            self.screen.say(Level.WARN, "Unsettled reports stay in the journal for next start")


async def run_engine(settings: EngineSettings, pairing_key: bytes, screen: Screen) -> int:
    return await Engine(settings, pairing_key, screen).run()
