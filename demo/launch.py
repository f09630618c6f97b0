"""Which children the demo starts, and with what command line: every service's flags.

:class:`Launcher` builds each child (``python -m SERVICE ...`` with its environment and
log file) and hands it to the supervisor; :class:`~demo.runner.Demo` decides when, waits
for each to be ready, and stops them in order.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common.db import database_url
from common.db.auditkeys import KEY_FILE
from common.tcp import free_port
from demo.plan import ChargePointPlan, Plan, service_file, temperatures_file
from demo.settings import DemoSettings
from demo.supervisor import BrokerChild, Notice, ProcessChild, Supervisor

__all__ = ["CORE_TIMEOUT", "DRIVER_PAUSE", "SPEED", "Launcher"]

# Simulated seconds per real second at every engine: an 11 kW charge of a few kWh
# takes 10-30 s, so the board moves while somebody watches.
SPEED = 60
CORE_TIMEOUT = 60.0  # broker, registry, central: without them there is no demo
DRIVER_PAUSE = 2


def _repo_root() -> Path:
    import common

    return Path(common.__file__).resolve().parent.parent


class Launcher:
    """Starts the demo's children under ``supervisor`` and keeps them, grouped by tier.

    ``central_addr`` and ``ocpp_url`` are set by the demo once Central is ready; the
    CPs, OCPP chargers and drivers started afterwards are given them.
    """

    def __init__(
        self,
        settings: DemoSettings,
        plan: Plan,
        supervisor: Supervisor,
        notice: Callable[[Notice], None],
    ) -> None:
        self.s = settings
        self.plan = plan
        self.supervisor = supervisor
        self._notice = notice
        self.dirs = {
            name: settings.data_dir / name
            for name in ("logs", "registry", "cps", "drivers", "weather")
        }
        self.db_url = database_url(settings.data_dir, env={})
        self.broker: BrokerChild | None = None
        self.registry: ProcessChild | None = None
        self.central: ProcessChild | None = None
        self.edges: list[ProcessChild] = []  # weather, web
        self.engines: list[ProcessChild] = []
        self.monitors: list[ProcessChild] = []
        self.ocpp_chargers: list[ProcessChild] = []
        self.drivers: list[ProcessChild] = []
        self.helpers: list[ProcessChild] = []  # one-shot: driver accounts
        self.central_addr = ""
        self.ocpp_url = ""

    def env(self, **extra: str) -> dict[str, str]:
        """The children's environment: ours minus any EV_* (this run decides those)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("EV_")}
        root = str(_repo_root())
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = root if not path else f"{root}{os.pathsep}{path}"
        env["EV_DATABASE_URL"] = self.db_url
        env["EV_DATA_DIR"] = str(self.s.data_dir)
        # Registry, Central and 'drivers add' sign one audit chain: one key file for all
        # (made in _start; the registry's own data dir would otherwise get its own key).
        env["EV_AUDIT_KEY_FILE"] = str(self.s.data_dir / KEY_FILE)
        if self.broker is not None:
            env["EV_KAFKA_BOOTSTRAP"] = self.broker.broker.bootstrap
        env.update(extra)
        return env

    def child(
        self, name: str, module: str, args: list[str], env: dict[str, str], **options: bool
    ) -> ProcessChild:
        """``python -m module args`` in the data directory, logging to ``logs/NAME.log``;
        ``options`` as :class:`ProcessChild` takes them (``looping``, ``quiet_stdout``)."""
        log = self.dirs["logs"] / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.log"
        command = [sys.executable, "-m", module, *args]
        return ProcessChild(name, command, env, log, cwd=self.s.data_dir, **options)

    def _registers(self, cp: ChargePointPlan, registry: str, ca: str) -> list[str]:
        """The flags a monitor and an OCPP charger share: who the CP is and how it registers."""
        return [
            *("--id", cp.id, "--location", cp.location),
            *("--registry", registry, "--registry-ca", ca, "--auto"),
            *("--data-dir", str(self.dirs["cps"])),
        ]

    def start_registry(self) -> None:
        s = self.s
        args = ["--listen", f"{s.host}:{s.ports.registry}"]
        args += ["--data-dir", str(self.dirs["registry"])]
        env = self.env(
            EV_PROVISIONING_TOKEN=s.provisioning_token, EV_OPERATOR_TOKEN=s.operator_token
        )
        self.registry = self.child("registry", "registry", args, env)
        self.supervisor.start(self.registry)

    def start_central(self) -> None:
        s = self.s
        args = ["--listen", f"{s.host}:{s.ports.central}", "--api", f"{s.host}:{s.ports.api}"]
        # Engines run SPEED times faster than real time, so they deliver SPEED times more
        # energy per real second than their 11 kW: Central's energy bound must know.
        args += ["--no-console", "--max-kw", str(11 * SPEED * 2)]
        if any(cp.ocpp for cp in self.plan.cps):
            args += ["--ocpp", f"{s.host}:0"]  # OCPP chargers join the same board
        self.central = self.child(
            "central",
            "central",
            args,
            self.env(EV_OPERATOR_TOKEN=s.operator_token, EV_WEATHER_TOKEN=s.weather_token),
        )
        self.supervisor.start(self.central)

    def start_weather(self, api: str) -> ProcessChild:
        d = self.dirs["weather"]
        temperatures = d / "temperatures.txt"
        if not temperatures.exists():  # a reused data dir keeps the user's edits
            temperatures.write_text(temperatures_file(self.plan.cities), encoding="utf-8")
        locations = d / "locations.txt"
        locations.write_text("".join(f"{c.name}\n" for c in self.plan.cities), encoding="utf-8")
        args = ["--temperatures", str(temperatures), "--locations", str(locations)]
        args += ["--listen", f"{self.s.host}:0", "--central-api", api, "--no-menu"]
        args += ["--data-dir", str(d)]
        child = self.child(
            "weather", "weather", args, self.env(EV_WEATHER_TOKEN=self.s.weather_token)
        )
        self.edges.append(child)
        self.supervisor.start(child)
        return child

    def start_web(self, api: str, registry: str, ca: str) -> ProcessChild:
        s = self.s
        args = ["--listen", f"{s.host}:{s.ports.web}", "--central-api", api]
        args += ["--registry-url", registry, "--registry-ca", ca]
        env = self.env(
            EV_OPERATOR_TOKEN=s.operator_token, EV_PROVISIONING_TOKEN=s.provisioning_token
        )
        child = self.child("web", "web_ui", args, env)
        self.edges.append(child)
        self.supervisor.start(child)
        return child

    def start_cps(self, registry: str, ca: str) -> None:
        host, cps_dir = self.s.host, str(self.dirs["cps"])
        for cp in self.plan.cps:
            if cp.ocpp:
                self._start_ocpp_charger(cp, registry, ca)
                continue
            engine_addr = f"{host}:{free_port(host)}"
            engine = self.child(
                f"{cp.id} engine",
                "cp_engine",
                [
                    *("--id", cp.id, "--listen", engine_addr, "--central", self.central_addr),
                    *("--auto-plug", "--speed", str(SPEED), "--data-dir", cps_dir),
                ],
                self.env(),
            )
            monitor = self.child(
                f"{cp.id} monitor",
                "cp_monitor",
                [
                    *self._registers(cp, registry, ca),
                    *("--engine", engine_addr, "--central", self.central_addr),
                ],
                self.env(EV_PROVISIONING_TOKEN=self.s.provisioning_token),
            )
            self.engines.append(engine)
            self.monitors.append(monitor)
            self.supervisor.start(engine)
            self.supervisor.start(monitor)

    def _start_ocpp_charger(self, cp: ChargePointPlan, registry: str, ca: str) -> None:
        """An OCPP 1.6J charger: registers like a monitor, then speaks OCPP to Central."""
        charger = self.child(
            f"{cp.id} OCPP charger",
            "ocpp_sim",
            [*self._registers(cp, registry, ca), "--url", self.ocpp_url, "--speed", str(SPEED)],
            self.env(EV_PROVISIONING_TOKEN=self.s.provisioning_token),
        )
        self.ocpp_chargers.append(charger)
        self.supervisor.start(charger)

    def secret_path(self, driver_id: str) -> Path:
        return self.dirs["drivers"] / f"{driver_id}.secret"

    def service_path(self, driver_id: str) -> Path:
        return self.dirs["drivers"] / f"{driver_id}.txt"

    def create_driver_accounts(self) -> None:
        for driver in self.plan.drivers:
            secret = self.secret_path(driver.id)
            if secret.exists():  # a reused data dir: the account is already there
                continue
            helper = self.child(
                f"{driver.id} account",
                "central",
                ["drivers", "add", driver.id, "--secret-file", str(secret)],
                self.env(),
                quiet_stdout=True,  # it prints the secret: keep that out of the logs
            )
            helper.start()
            self.helpers.append(helper)

    def wait_driver_accounts(self, check: Callable[[], None]) -> None:
        deadline = time.monotonic() + CORE_TIMEOUT
        for helper in self.helpers:
            while not helper.wait(0.1):
                check()
                if time.monotonic() > deadline:
                    helper.kill()
                    break
            code = helper.exit_code()
            if code:
                self._notice(Notice(helper.name, f"could not be created (exit {code})", "warning"))

    def start_drivers(self) -> None:
        for driver in self.plan.drivers:
            if not self.secret_path(driver.id).exists():
                continue
            path = self.service_path(driver.id)
            path.write_text(service_file(driver), encoding="utf-8")
            args = ["--id", driver.id, "--central", self.central_addr]
            args += ["--secret-file", str(self.secret_path(driver.id)), "--no-tty"]
            args += ["run", str(path), "--pause", str(DRIVER_PAUSE)]
            child = self.child(f"driver {driver.id}", "driver", args, self.env(), looping=True)
            self.drivers.append(child)
            self.supervisor.start(child)
