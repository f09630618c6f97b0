"""``evcharging demo``: the whole system on one machine, as supervised child processes.

Start order (each step waits for what the next needs)::

    broker ─► database migrated ─► registry ∥ central ─► weather ∥ web ∥ CPs ∥ driver accounts
           ─► CPs registered and priced ─► drivers

Stop order is the reverse, broker last: drivers, engines (a supply in progress is ended
and billed), monitors, then the totals are read, then weather, web, central, registry.

DATA_DIR layout::

    evcharging.db             the shared SQLite database
    operator.token            the operator token (0600), for curl and EV_OPERATOR_TOKEN_FILE
    audit.key                 the audit chain's HMAC key (0600): Registry and Central sign with it
    logs/NAME.log             each child's stdout and stderr (appended across runs)
    registry/registry-tls/    the Registry's CA (ca.pem) and certificate
    cps/cp-ID/                each CP's secret, pairing key and journal
    drivers/D.secret, D.txt   each driver's secret and service file
    weather/                  the simulated temperatures and the watched locations
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from common.db import open_database
from common.db.auditkeys import load_audit_keys
from common.errors import EVChargingError
from common.infra import EmbeddedBroker
from common.procs import log_tail
from common.ready import announce, find_ready
from demo.central_api import ApiUnavailable, CentralApi
from demo.launch import CORE_TIMEOUT, Launcher
from demo.plan import (
    Plan,
    make_plan,
)
from demo.screen import Screen, ServiceLine, Status, stats_since, summary_lines
from demo.settings import DemoSettings
from demo.supervisor import (
    BrokerChild,
    Notice,
    ProcessChild,
    Supervisor,
    stop_all,
)

__all__ = ["Demo", "StartupFailed"]

EDGE_TIMEOUT = 45.0  # weather, web: the demo goes on without them, and keeps restarting them
CP_TIMEOUT = 60.0


class StartupFailed(EVChargingError):
    """A service the demo cannot run without did not come up."""


class _Stopped(Exception):
    """The user asked to stop (or --duration ran out) during start-up."""


class Demo:
    """One run of the demo. :meth:`run` returns the exit code."""

    def __init__(self, settings: DemoSettings, screen: Screen, plan: Plan | None = None) -> None:
        self.s = settings
        self.screen = screen
        self.plan = plan or make_plan(settings.cps, settings.drivers, ocpp=settings.ocpp_cps)
        self.supervisor = Supervisor(self._notice)
        self.stop_requested = threading.Event()
        self.hurry = threading.Event()
        self.stop_reason = ""
        self._t0 = time.monotonic()
        self._deadline = None if settings.duration is None else self._t0 + settings.duration
        self.launch = Launcher(settings, self.plan, self.supervisor, self._notice)
        self._api: CentralApi | None = None
        self._lines: list[ServiceLine] = []
        self._dashboard: str | None = None
        self._last_stats: dict[str, Any] | None = None
        self._baseline: dict[str, Any] | None = None  # totals of earlier runs in this dir

    # -- public -----------------------------------------------------------------------

    def request_stop(self, reason: str) -> None:
        """Ask the demo to stop (thread- and signal-safe); a second call hurries it."""
        if self.stop_requested.is_set():
            self.hurry.set()
            return
        self.stop_reason = reason
        self.stop_requested.set()

    def run(self) -> int:
        code = 0
        try:
            try:
                self._start()
                self._loop()
            except _Stopped:
                pass
            except StartupFailed as exc:
                self.screen.notice(Notice("demo", f"cannot start: {exc}", "error"))
                self.stop_reason = "start-up failed"
                code = 1
        finally:
            self.screen.close()
            stats = self._shutdown()
        elapsed = time.monotonic() - self._t0
        for line in summary_lines(stats, elapsed, self.stop_reason or "stopped"):
            self.screen.say(line)
        self.screen.say(f"Everything is stopped. Logs and data: {self.s.data_dir}")
        return code

    # -- start-up ---------------------------------------------------------------------

    def _start(self) -> None:
        s = self.s
        for path in self.launch.dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        token_file = s.data_dir / "operator.token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(s.operator_token + "\n")
        load_audit_keys(s.data_dir, env={})  # makes DATA_DIR/audit.key (0600) on first run
        self.screen.say(f"EVCharging demo: data and logs in {s.data_dir}")
        for note in s.notes:
            self.screen.say(f"note: {note}")
        if self._deadline is not None:
            self.screen.say(f"Running for {s.duration:g} s, then a summary.")

        self.screen.say("Starting the broker…")
        broker = EmbeddedBroker(s.ports.broker, s.host, self.launch.dirs["logs"] / "broker.log")
        self.launch.broker = BrokerChild(broker)
        self.supervisor.start(self.launch.broker)
        if not self.launch.broker.running:
            raise StartupFailed(self.launch.broker.describe_exit(1))
        self._check()

        self.screen.say("Preparing the database, starting the registry and central…")
        try:
            open_database(self.launch.db_url).dispose()  # migrate once, before two services race
        except EVChargingError as exc:
            raise StartupFailed(f"database {self.launch.db_url}: {exc}") from None
        self.launch.start_registry()
        self.launch.start_central()
        reg, ca = self._core_ready(self.launch.registry, "registry", "url", "ca")
        central, api = self._core_ready(self.launch.central, "central", "listen", "api")
        self._pin(self.launch.registry, "--listen", reg.removeprefix("https://"))
        self._pin(self.launch.central, "--listen", central)
        self._pin(self.launch.central, "--api", api.removeprefix("http://").removesuffix("/api"))
        if any(cp.ocpp for cp in self.plan.cps):
            (ocpp,) = self._core_ready(self.launch.central, "central-ocpp", "url")
            self._pin(
                self.launch.central, "--ocpp", ocpp.removeprefix("ws://").removesuffix("/ocpp")
            )
            self.launch.ocpp_url = ocpp
        self.launch.central_addr = central
        self._api = CentralApi(api, s.operator_token)
        self._baseline = self._first_stats()

        n = len(self.plan.cps)
        self.screen.say(
            f"Starting the weather office, the web dashboard, {n} charge point"
            f"{'s' if n != 1 else ''} and {len(self.plan.drivers)} driver account(s)…"
        )
        weather = self.launch.start_weather(api)
        web = self.launch.start_web(api, reg, ca)
        self.launch.start_cps(reg, ca)
        self.launch.create_driver_accounts()
        weather_url = (self._ready(weather, "weather", EDGE_TIMEOUT) or {}).get("url")
        web_url = (self._ready(web, "web", EDGE_TIMEOUT) or {}).get("url")
        if weather_url:
            self._pin(weather, "--listen", weather_url.removeprefix("http://"))
        if web_url:
            self._pin(web, "--listen", web_url.removeprefix("http://").rstrip("/"))
            self._dashboard = web_url

        self.screen.say("Waiting for the charge points to register, authenticate and get prices…")
        self._wait_cps()
        self.launch.wait_driver_accounts(self._check)
        self.launch.start_drivers()

        self._lines = [
            ServiceLine("Broker (Kafka API)", broker.bootstrap),
            ServiceLine("Registry", reg, f"CA {ca}"),
            ServiceLine("Central", central),
            ServiceLine("API_Central", api),
            ServiceLine(
                "Weather office",
                weather_url or "not started (see its log)",
                f"simulated; temperatures in {self.launch.dirs['weather'] / 'temperatures.txt'}",
            ),
            ServiceLine("Web dashboard", web_url or "not started (see its log)"),
        ]
        engines = iter(self.launch.engines)
        for cp in self.plan.cps:
            if cp.ocpp:
                where = f"OCPP 1.6J at {self.launch.ocpp_url}/{cp.id}"
            else:
                engine = next(engines)
                where = f"engine {engine.args[engine.args.index('--listen') + 1]}"
            self._lines.append(
                ServiceLine(f"Charge point {cp.id}", f"{cp.location}, {cp.price} €/kWh", where)
            )
        for driver in self.plan.drivers:
            self._lines.append(
                ServiceLine(
                    f"Driver {driver.id}", f"service file {self.launch.service_path(driver.id)}"
                )
            )
        self.screen.say("")
        self.screen.services(self._lines)
        self.screen.say(f"Operator token: {s.operator_token}  (also in {token_file})")
        if self._dashboard:
            self.screen.say(
                f"Dashboard: {self._dashboard}  (operator pages: log in with the operator token)"
            )
        else:
            self.screen.say("Dashboard: not available (the web UI did not start; see its log)")
        stop = "Ctrl+C to stop early" if self._deadline is not None else "Ctrl+C to stop"
        self.screen.say(f"Up in {time.monotonic() - self._t0:.0f} s. {stop}.")
        announce("demo", data=s.data_dir, api=api, dashboard=self._dashboard)
        self.screen.say("")

    def _wait_cps(self) -> None:
        """Price each CP as soon as Central knows it; wait until all are ACTIVATED."""
        assert self._api is not None
        wanted = {cp.id: cp for cp in self.plan.cps}
        priced: set[str] = set()
        deadline = time.monotonic() + CP_TIMEOUT
        states: dict[str, str] = {}
        while True:
            self._check()
            try:
                known = {cp["id"]: cp for cp in self._api.chargepoints()}
            except ApiUnavailable:
                known = {}
            for cp_id, cp in known.items():
                if cp_id in wanted and cp_id not in priced:
                    try:
                        self._api.set_price(cp_id, wanted[cp_id].price)
                        priced.add(cp_id)
                    except ApiUnavailable:
                        pass
                states[cp_id] = str(cp.get("state"))
            ready = [c for c in wanted if c in priced and states.get(c) == "ACTIVATED"]
            if len(ready) == len(wanted):
                return
            if time.monotonic() > deadline:
                late = ", ".join(
                    f"{c} {states.get(c, 'unknown')}" for c in wanted if c not in ready
                )
                text = f"not all charge points are up yet ({late}); going on"
                self._notice(Notice("demo", text, "warning"))
                return
            time.sleep(0.5)

    def _first_stats(self) -> dict[str, Any] | None:
        """The totals before this run (a reused data directory has earlier sessions)."""
        assert self._api is not None
        for _ in range(10):
            try:
                return self._api.stats()
            except ApiUnavailable:
                self._check()
                time.sleep(0.5)
        return None

    def _pin(self, child: ProcessChild | None, flag: str, value: str) -> None:
        """Restarts reuse the port a child got the first time (it may have asked for 0)."""
        assert child is not None
        child.args[child.args.index(flag) + 1] = value

    def _core_ready(self, child: ProcessChild | None, service: str, *keys: str) -> list[str]:
        """The ``keys`` of a core child's ready line (:meth:`_ready`), in that order.

        Raises:
            StartupFailed: it did not get there, or its ready line lacks one of ``keys``.
        """
        fields = self._ready(child, service, CORE_TIMEOUT) or {}
        missing = [key for key in keys if not fields.get(key)]
        if missing:
            raise StartupFailed(f"{service} announced itself ready without {', '.join(missing)}")
        return [fields[key] for key in keys]

    def _ready(
        self, child: ProcessChild | None, service: str, timeout: float
    ) -> dict[str, str] | None:
        """Wait for the child's ready line for ``service`` (common.ready) since its start;
        the line's fields.

        A core child (registry, central) that does not get there fails the start-up;
        any other is reported and left to the supervisor.
        """
        assert child is not None
        core = child in (self.launch.registry, self.launch.central)
        deadline = time.monotonic() + timeout
        offset = child.start_offset
        while True:
            found = find_ready(child.output_since(offset), service)
            if found:
                return found[0]
            self._check()
            failure = None
            if child.restarts or child.exit_code() is not None:
                failure = "crashed while starting"
            elif time.monotonic() > deadline:
                failure = f"did not start within {timeout:g} s"
            if failure:
                tail = log_tail(child.log_path, 5).replace("\n", "\n    ")
                message = f"{child.name} {failure} (log {child.log_path}):\n    {tail}"
                if core:
                    raise StartupFailed(message)
                text = f"{failure}; the demo goes on without it"
                self._notice(Notice(child.name, text, "warning"))
                return None
            time.sleep(0.1)

    def _check(self) -> None:
        """During start-up: watch the children, and honour Ctrl+C or the deadline."""
        self.supervisor.poll()
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.request_stop("--duration reached")
        if self.stop_requested.is_set():
            raise _Stopped

    # -- running ----------------------------------------------------------------------

    def _loop(self) -> None:
        self.screen.live()
        last = 0.0
        while not self.stop_requested.is_set():
            now = time.monotonic()
            if self._deadline is not None and now >= self._deadline:
                self.request_stop("--duration reached")
                break
            self.supervisor.poll()
            if now - last >= 1.0:
                last = now
                self.screen.update(self._status())
            self.stop_requested.wait(0.2)

    def _status(self) -> Status:
        status = Status(
            elapsed=time.monotonic() - self._t0,
            duration=self.s.duration,
            children=self.supervisor.status(),
            dashboard=self._dashboard,
        )
        if self._api is not None:
            try:
                status.cps = self._api.chargepoints()
                status.stats = stats_since(self._baseline, self._api.stats())
                self._last_stats = status.stats
            except ApiUnavailable as exc:
                status.api_error = str(exc)
        return status

    def _notice(self, notice: Notice) -> None:
        self.screen.notice(notice)

    # -- shutdown ---------------------------------------------------------------------

    def _shutdown(self) -> dict[str, Any] | None:
        self.supervisor.stopping = True
        hurry: Callable[[], bool] = self.hurry.is_set
        if self.supervisor.children:
            self.screen.say("Stopping: drivers, charge points, services, broker…")
        for helper in self.launch.helpers:
            helper.kill()
        stop_all(
            [
                self.launch.drivers,
                self.launch.engines + self.launch.ocpp_chargers,
                self.launch.monitors,
            ],
            hurry=hurry,
        )
        stats = self._final_stats()
        core = [c for c in (self.launch.central, self.launch.registry) if c is not None]
        stop_all([self.launch.edges, core], hurry=hurry)
        if self.launch.broker is not None:
            stop_all([[self.launch.broker]], grace=5.0, hurry=hurry)
        if self._api is not None:
            self._api.close()
        return stats

    def _final_stats(self) -> dict[str, Any] | None:
        """Totals once the engines have settled what they were supplying."""
        if self._api is None or self.launch.central is None or not self.launch.central.running:
            return self._last_stats
        deadline = time.monotonic() + 5
        while True:
            try:
                stats = self._api.stats()
            except ApiUnavailable:
                return self._last_stats
            if not stats.get("active_sessions") or time.monotonic() > deadline:
                return stats_since(self._baseline, stats)
            time.sleep(0.2)


def install_signal_handlers(demo: Demo) -> Callable[[], None]:
    """SIGINT and SIGTERM stop the demo (a second one hurries it); returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        demo.request_stop(f"stopped by {signal.Signals(signum).name}")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def undo() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return undo
