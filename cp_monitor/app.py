"""The monitor's composition root: Registry client, engine watch, Central session, menu."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from common.backoff import Backoff
from common.chargepoint.errors import MenuError, RegistryError, SecretMissing
from common.chargepoint.registry_client import RegistryClient
from common.chargepoint.secret_file import SecretFile
from common.chargepoint.startup import start_console
from common.chargepoint.terminal import Level, Screen
from common.config import require_secret
from common.errors import ConfigError
from cp_monitor.central_link import CentralSession
from cp_monitor.engine_link import EngineWatch
from cp_monitor.health import EngineHealth
from cp_monitor.menu import MONITOR_MENU
from cp_monitor.settings import MonitorSettings

__all__ = ["Monitor", "run_monitor"]

PROVISIONING_TOKEN = "EV_PROVISIONING_TOKEN"


class Monitor:
    """One ``ev-cp-monitor`` process."""

    def __init__(self, settings: MonitorSettings, pairing_key: bytes, screen: Screen) -> None:
        self.settings = settings
        self.screen = screen
        say = screen.say
        self.secrets = SecretFile(settings.secret_file, settings.cp_id)
        self.registry = RegistryClient(settings.registry, settings.registry_ca)
        self.engine = EngineWatch(
            settings.engine, settings.cp_id, pairing_key, self._engine_changed, say
        )
        self.central = CentralSession(
            settings.central,
            settings.cp_id,
            self.secrets,
            self.engine.tracker,
            self.engine.hand_key,
            say,
            auto=settings.auto,
            heartbeat_interval=settings.heartbeat_interval,
        )
        self._quit = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    def _engine_changed(self, health: EngineHealth) -> None:
        self.central.engine_changed(health)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------- Registry
    async def register(self) -> bool | None:
        """Register with the Registry. True: done; False: retry may help; None: it won't."""
        s = self.settings
        if self.secrets.exists():
            self.screen.say(
                Level.WARN,
                f"{s.cp_id} already has a secret ({self.secrets.path}); deregister first",
            )
            return True
        if s.location is None:
            self.screen.say(Level.BAD, "Cannot register: give the CP's --location")
            return None
        try:
            token = require_secret(PROVISIONING_TOKEN)
        except ConfigError as exc:
            self.screen.say(Level.BAD, f"Cannot register: {exc}")
            return None
        self.screen.say(Level.INFO, f"Registering {s.cp_id} at {s.location} with {s.registry}")
        try:
            secret = await asyncio.to_thread(self.registry.register, s.cp_id, s.location, token)
        except RegistryError as exc:
            self.screen.say(Level.BAD, str(exc))
            return False if exc.retriable else None
        try:
            self.secrets.write(secret)
        except OSError as exc:
            self.screen.say(Level.BAD, f"Cannot save the secret to {self.secrets.path}: {exc}")
            return None
        self.screen.say(
            Level.GOOD,
            f"Registered {s.cp_id}; secret saved to {self.secrets.path} (readable only by you)",
        )
        return True

    async def deregister(self) -> None:
        try:
            secret = self.secrets.read()
        except SecretMissing as exc:
            self.screen.say(Level.BAD, str(exc))
            return
        try:
            await asyncio.to_thread(self.registry.deregister, self.settings.cp_id, secret)
        except RegistryError as exc:
            self.screen.say(Level.BAD, str(exc))
            return
        self.central.stop()
        self.secrets.delete()
        self.screen.say(Level.GOOD, f"Deregistered {self.settings.cp_id}; secret deleted")

    async def _unattended(self) -> None:
        """--auto: register if needed (retrying while the Registry is away), authenticate."""
        backoff = Backoff(1.0, 10.0)
        while not self.secrets.exists():
            done = await self.register()
            if done:
                break
            if done is None:
                self.screen.say(Level.BAD, "Cannot register unattended; use the menu once fixed")
                return
            await asyncio.sleep(backoff.next())
        self.central.authenticate()

    # -------------------------------------------------------------- menu
    def command(self, line: str) -> None:
        try:
            cmd = MONITOR_MENU.parse(line)
        except MenuError as exc:
            self.screen.say(Level.WARN, str(exc))
            return
        seconds = cmd.number or 0.0
        actions: dict[str, Callable[[], Any]] = {
            "register": lambda: self._spawn(self.register()),
            "deregister": lambda: self._spawn(self.deregister()),
            "authenticate": self.central.authenticate,
            "reauthenticate": self.central.reauthenticate,
            "status": self.show_status,
            "ko": lambda: self.engine.inject(False),
            "ok": lambda: self.engine.inject(True),
            "swallow": lambda: self.engine.swallow(seconds),
            "lose": lambda: self.central.lose_link(seconds),
            "help": self.show_help,
            "quit": self._quit.set,
        }
        actions[cmd.name]()

    def show_status(self) -> None:
        s = self.settings
        health = self.engine.tracker.current
        rows = [
            ("Charge point", f"{s.cp_id} ({s.location or 'location not set'})"),
            ("State", self.central.state or "not authenticated"),
            ("Central", "connected" if self.central.connected else "not connected"),
            ("Engine link", "connected" if self.engine.connected else "not connected"),
            ("Engine", "not checked yet" if health is None else health.reason or "healthy"),
            ("Secret", str(self.secrets.path) if self.secrets.exists() else "none: register"),
        ]
        self.screen.table(f"Monitor {s.cp_id}", rows)

    def show_help(self) -> None:
        lines = "\n".join(MONITOR_MENU.help_lines())
        self.screen.say(Level.INFO, f"Keys (or lines on stdin):\n{lines}")

    # --------------------------------------------------------------- run
    async def run(self) -> int:
        s = self.settings
        self.screen.say(
            Level.INFO,
            f"Monitor {s.cp_id} ({s.location or 'no location'}): engine {s.engine}, "
            f"Central {s.central}, Registry {s.registry}; press ? for the menu",
        )
        if self.secrets.exists() and self.secrets.loose_permissions():
            self.screen.say(Level.WARN, f"{self.secrets.path} is readable by others: chmod 600")
        reader = start_console(MONITOR_MENU, self.command, self._quit.set)
        tasks = [asyncio.create_task(self.engine.run()), asyncio.create_task(self.central.run())]
        if s.auto:
            self._spawn(self._unattended())
        elif not self.secrets.exists():
            self.screen.say(Level.INFO, "Not registered yet: press r to register")
        else:
            self.screen.say(Level.INFO, "Press a to authenticate with Central")
        try:
            await self._quit.wait()
        finally:
            reader.close()
            self.central.stop()
            await asyncio.sleep(0.05)  # let the BYE go out
            for task in [*tasks, *self._tasks]:
                task.cancel()
            await asyncio.gather(*tasks, *self._tasks, return_exceptions=True)
            await self.engine.close()
        self.screen.say(Level.INFO, "Monitor stopped")
        return 0


async def run_monitor(settings: MonitorSettings, pairing_key: bytes, screen: Screen) -> int:
    return await Monitor(settings, pairing_key, screen).run()
