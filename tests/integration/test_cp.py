"""A charge point as real processes: ``python -m cp_engine`` and ``python -m cp_monitor``.

They run against a real Central and a real Registry (module-wide, one CP id per test),
are driven through their stdin menus like a technician would, and every test checks
what the engine's and the monitor's screens said as well as Central's state.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from central.drivers import add_driver
from common.procs import ServiceProcess
from common.protocol.framing import NACK
from common.protocol.messages import MessageType
from common.tcp import free_port
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.central import (
    CentralProcess,
    driver,
    provision_cp,
    start_central,
)
from tests.support.scrypt import CHEAP_SCRYPT, CHEAP_SCRYPT_ENV

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SPEED = "120"  # 11 kW at 120x: 0.37 kWh per telemetry second


class Interactive(ServiceProcess):
    """A service process whose stdin is a pipe, for its menu."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, stdin_pipe=True, **kwargs)

    def type(self, line: str) -> None:
        self.send(line)

    def count(self, pattern: str) -> int:
        return len(re.findall(pattern, self.output(), re.MULTILINE))

    async def line(self, pattern: str, timeout: float = 10) -> re.Match[str]:
        return await asyncio.to_thread(self.wait_for_line, pattern, timeout)

    async def lines(self, pattern: str, n: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.count(pattern) < n:
            if time.monotonic() > deadline:
                self._fail(f"printed /{pattern}/ {self.count(pattern)} times, not {n}")
            await asyncio.sleep(0.05)


@dataclass
class Site:
    """Central, the Registry and their shared database for the whole module."""

    root: Path
    central: CentralProcess
    registry_url: str
    registry_ca: Path | None
    token: str
    started: list[ServiceProcess] = field(default_factory=list)

    def env(self, cp_id: str) -> dict[str, str]:
        env = {"EV_DATA_DIR": str(self.root / cp_id), "EV_PROVISIONING_TOKEN": self.token}
        if self.registry_ca is not None:
            env["EV_REGISTRY_CA"] = str(self.registry_ca)
        return env

    def engine(self, cp_id: str, port: int, *extra: str, name: str = "engine") -> Interactive:
        args = [sys.executable, "-m", "cp_engine", "--id", cp_id, "--listen", f"127.0.0.1:{port}"]
        args += ["--central", str(self.central.addr), "--speed", SPEED, *extra]
        return self._start(args, cp_id, name)

    def monitor(self, cp_id: str, port: int, *extra: str, name: str = "monitor") -> Interactive:
        args = [sys.executable, "-m", "cp_monitor", "--id", cp_id, "--location", "Madrid"]
        args += ["--engine", f"127.0.0.1:{port}", "--central", str(self.central.addr)]
        args += ["--registry", self.registry_url, *extra]
        return self._start(args, cp_id, name)

    def _start(self, args: list[str], cp_id: str, name: str) -> Interactive:
        log = self.root / "logs" / f"{cp_id}-{name}-{len(self.started)}.log"
        proc = Interactive(args, self.env(cp_id), log, f"{cp_id} {name}").start()
        self.started.append(proc)
        return proc

    async def state(self, cp_id: str, state: str, timeout: float = 10) -> dict[str, Any]:
        return await self.central.wait_state(cp_id, state, timeout)

    async def engine_online(self, cp_id: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not (await asyncio.to_thread(self.central.cp, cp_id)).get("engine_connected"):
            assert time.monotonic() < deadline, f"{cp_id}'s engine never reached Central"
            await asyncio.sleep(0.1)

    async def sessions(self, cp_id: str) -> list[dict[str, Any]]:
        r = await asyncio.to_thread(self.central.get, f"/sessions?cp_id={cp_id}")
        return list(r.json()["sessions"])

    async def open_session(self, cp_id: str, **body: Any) -> requests.Response:
        return await asyncio.to_thread(self.central.post, "/sessions", {"cp_id": cp_id, **body})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("cp")
    db_url = f"sqlite:///{root / 'evcharging.db'}"
    central = start_central(root, db_url, free_port(), free_port())
    token = secrets.token_urlsafe(16)
    registry = ServiceProcess(
        [sys.executable, "-m", "registry", "--listen", "127.0.0.1:0"],
        env={
            "EV_DATABASE_URL": db_url,
            "EV_PROVISIONING_TOKEN": token,
            **CHEAP_SCRYPT_ENV,
            "EV_DATA_DIR": str(root / "registry"),
        },
        log_path=root / "logs" / "registry.log",
        name="registry",
    ).start()
    ready = registry.wait_ready("registry", 30)
    made = Site(root, central, ready["url"], Path(ready["ca"]), token)
    yield made
    for proc in reversed(made.started):
        proc.stop()
    registry.stop()
    central.proc.stop()


@pytest.fixture
def cp(site: Site, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh CP id per test; on failure, the tails of its processes are printed."""
    cp_id = re.sub(r"[^A-Za-z0-9]", "", request.node.name.removeprefix("test_"))[:24]
    before, failed_before = len(site.started), request.session.testsfailed
    yield cp_id
    mine = site.started[before:]
    for proc in mine:
        proc.stop()
    if request.session.testsfailed > failed_before:
        for proc in mine:
            print(f"\n----- {proc.name} (exit {proc.returncode}) -----\n{proc.tail(60)}")


def run(coro: Any) -> None:
    asyncio.run(coro)


async def up(
    site: Site, cp_id: str, *engine_args: str, auto: bool = True
) -> tuple[Interactive, Interactive, int]:
    """Engine, then monitor (``--auto``: registers with the Registry, authenticates)."""
    port = free_port()
    engine = site.engine(cp_id, port, *engine_args)
    await asyncio.to_thread(engine.wait_ready, "cp_engine", 10)
    monitor = site.monitor(cp_id, port, *(["--auto"] if auto else []))
    if auto:
        await monitor.line(rf"Registered {cp_id}; secret saved to", 20)
        await site.state(cp_id, "ACTIVATED")
        await site.engine_online(cp_id)
    return engine, monitor, port


# ---------------------------------------------------------------------------------------


def test_register_authenticate_charge_unplug_ticket(site: Site, cp: str) -> None:
    d_secret = add_driver(site.central.db_url, f"D{cp[:8]}", CHEAP_SCRYPT, TEST_AUDIT_KEYS)

    async def scenario() -> None:
        engine, monitor, _port = await up(site, cp, auto=False)
        await monitor.line(r"Not registered yet: press r to register")
        monitor.type("a")  # before registering: told to register first
        await monitor.line(rf"No secret for {cp}: .* Register first")
        monitor.type("register")
        await monitor.line(rf"Registered {cp}; secret saved to (\S+) \(readable only by you\)")
        secret_file = site.root / cp / f"cp-{cp}" / "secret"
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        monitor.type("a")
        await monitor.line(r"Authenticated with Central at")
        await monitor.line(r"State: ACTIVATED")
        await engine.line(r"Session key received from the monitor")
        await engine.line(r"Connected to Central at")
        await site.engine_online(cp)

        drv = await driver(site.central.addr, f"D{cp[:8]}", d_secret)
        drv.send(MessageType.CHARGE_REQUEST, {"cp_id": cp})
        authorized = await drv.recv_until({MessageType.CHARGE_AUTHORIZED}, 10)
        session_id = authorized.body["session_id"]
        await engine.line(rf"Authorised: session {session_id} for driver D")
        engine.type("p")
        await engine.line(rf"Vehicle plugged in: supplying session {session_id}")
        await drv.recv_until({MessageType.SUPPLY_STARTED}, 5)
        await monitor.line(r"State: SUPPLYING")
        progress = [await drv.recv_until({MessageType.TELEMETRY}, 5) for _ in range(2)]
        assert 0 < progress[0].body["kwh"] < progress[1].body["kwh"]
        await engine.lines(rf"Supplying {session_id}: 11 kW, [\d.]+ kWh, [\d.]+ €", 2)
        engine.type("u")
        ticket = await drv.recv_until({MessageType.TICKET}, 10)
        assert ticket.body["reason"] == "unplugged"
        assert ticket.body["kwh"] >= progress[1].body["kwh"]
        shown = await engine.line(rf"Ticket for session {session_id}: ([\d.]+) kWh, ([\d.]+) €")
        assert float(shown.group(1)) == ticket.body["kwh"]
        assert float(shown.group(2)) == ticket.body["total_eur"]
        await monitor.line(r"State: ACTIVATED \(supply ended: unplugged\)")
        await site.state(cp, "ACTIVATED")
        await drv.close()

        monitor.type("d")  # deregister: the Registry forgets the CP, the secret goes
        await monitor.line(rf"Deregistered {cp}; secret deleted")
        assert not secret_file.exists()
        deadline = time.monotonic() + 10
        while (await asyncio.to_thread(site.central.cp, cp))["registered"]:
            assert time.monotonic() < deadline, "Central never saw the deregistration"
            await asyncio.sleep(0.2)
        monitor.type("a")
        await monitor.lines(r"Register first", 2)

    run(scenario())


def test_fault_mid_supply_then_recovery(site: Site, cp: str) -> None:
    async def scenario() -> None:
        engine, monitor, _port = await up(site, cp, "--auto-plug")
        r = await site.open_session(cp)
        assert r.status_code == 201, r.text
        session_id = r.json()["session_id"]
        await site.state(cp, "SUPPLYING")
        await engine.lines(rf"Supplying {session_id}", 2)
        monitor.type("k")  # the technician marks the engine KO
        await monitor.line(r"Engine fault: engine KO: marked KO by a technician")
        broken = await site.state(cp, "BROKEN", 5)
        assert broken["session"] is None
        await monitor.line(r"State: BROKEN")
        await engine.line(r"Engine KO: marked KO by a technician")
        await engine.line(rf"Supply ended \(fault\): session {session_id}")
        await engine.line(rf"Ticket for session {session_id}: .*\(fault\); settled")
        [session] = await site.sessions(cp)
        assert session["status"] == "ended" and session["reason"] == "fault"
        assert session["kwh"] > 0
        refused = await site.open_session(cp)
        assert refused.status_code == 409 and "broken" in refused.json()["message"]
        monitor.type("o")
        await monitor.line(r"State: ACTIVATED \(engine recovered\)")
        await engine.line(r"Engine OK")
        await site.state(cp, "ACTIVATED")

    run(scenario())


def test_swallowed_health_answers_and_lost_central_link(site: Site, cp: str) -> None:
    async def scenario() -> None:
        _, monitor, _ = await up(site, cp)
        monitor.type("h 2")
        await monitor.line(r"Engine fault: engine not answering")
        await site.state(cp, "BROKEN", 5)
        await monitor.line(r"State: BROKEN \(engine not answering\)")
        await monitor.line(r"State: ACTIVATED \(engine recovered\)", 8)
        monitor.type("lose 2")
        await monitor.line(r"Simulating a lost link to Central for 2 s")
        await site.state(cp, "DISCONNECTED", 5)
        await monitor.line(r"Restoring the link to Central", 5)
        await site.state(cp, "ACTIVATED", 10)
        await monitor.lines(r"Authenticated with Central at", 2)

    run(scenario())


def test_monitor_killed_disconnects_and_refuses_supply(site: Site, cp: str) -> None:
    async def scenario() -> None:
        engine, monitor, _port = await up(site, cp, "--auto-plug")
        r = await site.open_session(cp)
        session_id = r.json()["session_id"]
        await site.state(cp, "SUPPLYING")
        monitor.kill()
        await site.state(cp, "DISCONNECTED", 5)
        await engine.line(r"Monitor disconnected")
        await engine.line(rf"Supply ended \(monitor_lost\): session {session_id}")
        await engine.line(rf"Ticket for session {session_id}: .*monitor_lost")
        refused = await site.open_session(cp)
        assert refused.status_code == 409
        assert refused.json()["message"] == "charge point is disconnected"
        [session] = await site.sessions(cp)
        assert (session["status"], session["reason"]) == ("ended", "monitor_lost")

    run(scenario())


def test_engine_killed_mid_supply_is_settled_once_after_restart(site: Site, cp: str) -> None:
    async def scenario() -> None:
        engine, monitor, port = await up(site, cp, "--auto-plug")
        r = await site.open_session(cp)
        session_id = r.json()["session_id"]
        await engine.lines(rf"Supplying {session_id}", 3)
        seen = float(re.findall(rf"Supplying {session_id}: 11 kW, ([\d.]+)", engine.output())[-1])
        engine.kill()  # SIGKILL: no chance to report anything
        await monitor.line(r"Lost the link to the engine")
        await monitor.line(r"Engine fault: engine unreachable")
        await site.state(cp, "BROKEN", 5)
        restarted = site.engine(cp, port, "--auto-plug", name="engine-restarted")
        await restarted.line(
            rf"Recovered from the journal: session {session_id} was cut short by a restart "
            r"at ([\d.]+) kWh"
        )
        await restarted.line(r"Connected to Central at")
        ticket = await restarted.line(rf"Ticket for session {session_id}: ([\d.]+) kWh")
        await monitor.line(r"State: ACTIVATED \(engine recovered\)")
        await site.state(cp, "ACTIVATED")
        [session] = await site.sessions(cp)
        # Settled with at least the energy last shown (the screen rounds to 0.001 kWh).
        assert session["status"] == "ended" and session["kwh"] >= seen - 0.001 > 0
        assert float(ticket.group(1)) == pytest.approx(session["kwh"], abs=0.001)
        audit = await asyncio.to_thread(site.central.get, f"/audit?action=session.ended&cp_id={cp}")
        ended = [e for e in audit.json()["entries"] if e["params"]["session_id"] == session_id]
        assert len(ended) == 1
        journal = (site.root / cp / f"cp-{cp}" / "journal.json").read_text()
        assert '"active":null' in journal and '"unsettled":[]' in journal

    run(scenario())


def test_key_revoked_then_reauthentication_restores(site: Site, cp: str) -> None:
    async def scenario() -> None:
        engine, monitor, _port = await up(site, cp, "--auto-plug", auto=False)
        monitor.type("r")
        await monitor.line(rf"Registered {cp}")
        monitor.type("a")
        await site.state(cp, "ACTIVATED")
        await site.engine_online(cp)
        r = await asyncio.to_thread(site.central.post, f"/chargepoints/{cp}/revoke-key")
        assert r.status_code == 200
        await monitor.line(r"Key revoked by Central: revoked by operator")
        await monitor.line(r"Press e to re-authenticate")
        await engine.line(r"Key revoked by Central")
        await site.state(cp, "STOPPED")
        refused = await site.open_session(cp)
        assert refused.status_code == 409
        monitor.type("e")
        await monitor.lines(r"Authenticated with Central at", 2)
        state = await site.state(cp, "ACTIVATED")
        assert state["key_status"] == "active"
        await engine.lines(r"Connected to Central at", 2)
        await site.engine_online(cp)
        ok = await site.open_session(cp, target_kwh=0.5)  # the engine works with the new key
        assert ok.status_code == 201, ok.text
        await monitor.line(r"State: SUPPLYING")
        await engine.line(r"Ticket for session .*: 0.500 kWh, .*\(target_reached\)", 10)

    run(scenario())


def test_charge_requested_from_the_cps_own_menu(site: Site, cp: str) -> None:
    async def scenario() -> None:
        engine, monitor, _ = await up(site, cp, "--auto-plug")
        engine.type("r 0.5")  # a walk-in user asks at the CP itself
        await engine.line(r"Authorised: session \S+ for a local user \(0.5 kWh")
        await engine.line(r"Ticket for session .*: 0.500 kWh, .*\(target_reached\)", 10)
        assert engine.count(r"Charge denied|Central refused supply") == 0
        await monitor.line(r"State: ACTIVATED \(supply ended: target_reached\)")

    run(scenario())


def test_central_down_mid_supply_report_delivered_when_it_returns(
    tmp_path: Path, sqlite_url: str
) -> None:
    """Central dies mid-supply: the engine finishes, journals, and reports once it is back.

    Central is this test's own (it is killed), so the CP is provisioned straight into its
    database (as the Registry would) and the secret file written for the monitor.
    """
    cp_id = "CPDOWN"
    central_port, api_port = free_port(), free_port()
    central = start_central(tmp_path, sqlite_url, central_port, api_port)
    home = tmp_path / cp_id / f"cp-{cp_id}"
    home.mkdir(parents=True)
    (home / "secret").write_text(provision_cp(sqlite_url, cp_id, "Oslo", "0.50"))
    (home / "secret").chmod(0o600)
    own = Site(tmp_path, central, "https://127.0.0.1:9", None, "unused")
    restarted: list[CentralProcess] = []

    async def scenario() -> None:
        engine, monitor, _ = await up(own, cp_id, "--auto-plug", auto=False)
        monitor.type("a")
        await own.state(cp_id, "ACTIVATED")
        await own.engine_online(cp_id)
        r = await own.open_session(cp_id, target_kwh=1.5)
        session_id = r.json()["session_id"]
        await engine.lines(rf"Supplying {session_id}", 1)
        central.proc.kill()
        await engine.line(
            rf"Supply ended \(target_reached\): session {session_id}, 1.500 kWh, 0.75 €; "
            r"Central unreachable, kept in the journal",
            15,
        )
        await monitor.line(r"Cannot reach Central at .*; retrying in [\d.]+ s")
        await engine.line(r"Cannot reach Central at .*; retrying in [\d.]+ s")
        journal = (home / "journal.json").read_text()
        assert session_id in journal and "target_reached" in journal
        back = start_central(tmp_path, sqlite_url, central_port, api_port, name="central-back")
        restarted.append(back)
        await monitor.lines(r"Authenticated with Central at", 2, 20)
        await engine.line(
            rf"Ticket for session {session_id}: 1.500 kWh, 0.75 € \(target_reached\)", 15
        )
        await back.wait_state(cp_id, "ACTIVATED")
        r2 = await asyncio.to_thread(back.get, f"/sessions?cp_id={cp_id}")
        [session] = r2.json()["sessions"]
        assert (session["status"], session["kwh"], session["reason"]) == (
            "ended",
            1.5,
            "target_reached",
        )
        assert '"unsettled":[]' in (home / "journal.json").read_text()

    try:
        run(scenario())
    finally:
        for proc in reversed(own.started):
            proc.stop()
        for c in (central, *restarted):
            c.proc.stop()


def test_bad_input_gives_one_clear_line(site: Site, cp: str) -> None:
    def cli(module: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", module, *args],
            capture_output=True,
            text=True,
            timeout=20,
            env={**os.environ, "EV_DATA_DIR": str(site.root / cp)},
        )

    bad = [
        ("cp_engine", "--id", cp, "--listen", "nowhere"),
        ("cp_engine", "--listen", "127.0.0.1:0"),
        ("cp_engine", "--id", cp, "--speed", "-3"),
        ("cp_monitor", "--id", "not an id!"),
        ("cp_monitor", "--id", cp, "--registry", "http://plain.example"),
    ]
    for module, *args in bad:
        done = cli(module, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1

    async def scenario() -> None:
        engine, monitor, port = await up(site, cp, auto=False)
        secret = site.root / cp / f"cp-{cp}" / "secret"
        secret.write_text("not-the-secret")
        secret.chmod(0o600)
        monitor.type("a")
        await monitor.line(rf"Central refused {cp}'s credentials: .* Register first")
        monitor.type("frobnicate")
        await monitor.line(r"unknown command 'frobnicate'; press \? for help")
        # A corrupt frame on the engine's monitor port is NACKed; the engine carries on.
        with socket.create_connection(("127.0.0.1", port), 5) as raw:
            raw.sendall(b"\x02junk\x03\x00")
            assert raw.recv(1) == bytes([NACK])
        engine.type("s")
        await engine.line(r"Health: OK")
        await monitor.lines(r"Engine healthy", 1)
        assert monitor.count(r"Lost the link to the engine") == 0

    run(scenario())
