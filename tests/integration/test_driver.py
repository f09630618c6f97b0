"""``python -m driver`` as a real process against a real Central, with scripted CPs.

The charge points are ``ScriptedCP`` peers (real sockets, real protocol) driven by a
task of the test, so the timing of each charge is the test's, not a simulator's; the
last test runs the real ``cp_engine`` and ``cp_monitor`` processes. Central comes from
the ``central`` fixture (tests/integration/conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from central.drivers import add_driver
from common.procs import ServiceProcess
from common.protocol.messages import MessageType
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.central import (
    CentralProcess,
    ScriptedCP,
    driver,
    provision_cp,
)
from tests.support.scrypt import CHEAP_SCRYPT

pytestmark = pytest.mark.integration

PROGRESS = re.compile(r"charging (\w+): \d+\.\d kW \d+\.\d{3} kWh \d+\.\d{2} € \d\d:\d\d$")


@dataclass
class Drivers:
    """Starts ``python -m driver --no-tty`` processes; stops them all at teardown."""

    tmp_path: Path
    central: CentralProcess
    secrets: dict[str, str] = field(default_factory=dict)
    started: list[ServiceProcess] = field(default_factory=list)

    def add(self, driver_id: str) -> str:
        self.secrets[driver_id] = add_driver(
            self.central.db_url, driver_id, CHEAP_SCRYPT, TEST_AUDIT_KEYS
        )
        return self.secrets[driver_id]

    def start(
        self,
        *args: str,
        driver_id: str = "D1",
        secret: str | None = None,
        central: str | None = None,
        retry_for: float = 5,
    ) -> ServiceProcess:
        name = f"driver-{len(self.started):02d}-{args[0]}"
        proc = ServiceProcess(
            [
                sys.executable,
                "-m",
                "driver",
                "--no-tty",
                "--id",
                driver_id,
                "--central",
                central or str(self.central.addr),
                "--retry-for",
                str(retry_for),
                *args,
            ],
            env={"EV_DRIVER_SECRET": secret or self.secrets[driver_id], "PYTHONWARNINGS": "error"},
            log_path=self.tmp_path / "drivers" / f"{name}.log",
            name=name,
        ).start()
        self.started.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 30, **kw: object) -> tuple[int, str]:
        """Start a driver command and wait for it to exit: (exit code, output)."""
        proc = self.start(*args, **kw)  # type: ignore[arg-type]
        code = proc.wait(timeout)
        return code, proc.output()


@pytest.fixture
def drivers(tmp_path: Path, central: CentralProcess) -> Iterator[Drivers]:
    pool = Drivers(tmp_path, central)
    yield pool
    for proc in pool.started:
        proc.kill()


async def serve(
    cp: ScriptedCP, *, readings: int = 2, every: float = 0.2, plug_after: float = 0.0
) -> None:
    """Accept every authorisation, plug, send telemetry, unplug: forever."""
    while True:
        session_id = await cp.accept_authorization(timeout=3600)
        await asyncio.sleep(plug_after)
        cp.plug(session_id)
        kwh = 0.0
        for _ in range(readings):
            await asyncio.sleep(every)
            kwh += 0.5
            cp.telemetry(session_id, kwh)
        await cp.unplug(session_id, kwh)


@contextlib.asynccontextmanager
async def charge_points(
    central: CentralProcess, *ids: str, serving: Mapping[str, Mapping[str, Any]] | None = None
) -> AsyncIterator[dict[str, ScriptedCP]]:
    """Connect a ScriptedCP for each id; those in ``serving`` run every charge (``serve``)."""
    serving = serving or {}
    secrets_ = {cp: provision_cp(central.db_url, cp, f"{cp}-town", "0.40") for cp in ids}
    cps = {cp: await ScriptedCP(cp, s, central.addr).connect() for cp, s in secrets_.items()}
    tasks = [asyncio.create_task(serve(cps[cp], **opts)) for cp, opts in serving.items()]
    for cp in cps:
        await central.wait_state(cp, "ACTIVATED")
    try:
        yield cps
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for link in cps.values():
            await link.close()


def stamp(line: str) -> datetime:
    return datetime.fromisoformat(line.split(" ", 1)[0])


def lines(output: str, pattern: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(pattern, line)]


def test_run_file_of_ten_services_pauses_between_them(
    central: CentralProcess, drivers: Drivers, tmp_path: Path
) -> None:
    drivers.add("D1")
    services = tmp_path / "services.txt"
    services.write_text(
        "# ten services, one of them at a CP that does not exist\n"
        "CP1\n"
        "CP2 5\n"
        "\n"
        "CP1 2.5   # inline comment\n"
        "CP2 lots\n"  # malformed: reported, skipped
        "CP1\nCP2\nGHOST\nCP1\nCP2\nCP1\nCP2\n",
        encoding="utf-8",
    )

    async def scenario() -> tuple[int, str, str, str]:
        async with charge_points(central, "CP1", "CP2", serving={"CP1": {}, "CP2": {}}):
            code, listing = await asyncio.to_thread(drivers.run, "list")
            assert code == 0, listing
            code, output = await asyncio.to_thread(
                drivers.run, "run", str(services), "--pause", "1", timeout=90
            )
            _, history = await asyncio.to_thread(drivers.run, "history")
            return code, listing, output, history

    code, listing, output, history = asyncio.run(scenario())
    assert code == 0, output
    assert re.search(r"CP1\s+│\s+CP1-town\s+│\s+0\.40 €/kWh", listing), listing
    assert re.search(r"CP2\s+│\s+CP2-town", listing), listing
    assert "line 6: target 'lots' is not a number of kWh (skipped)" in output
    starts = lines(output, r" service \d+/10 \(line \d+\): ")
    ends = lines(output, r" service \d+/10 done: ")
    assert len(starts) == len(ends) == 10, output
    assert [re.search(r"line (\d+)", s).group(1) for s in starts] == [  # type: ignore[union-attr]
        "2", "3", "5", "7", "8", "9", "10", "11", "12", "13"
    ]  # fmt: skip
    gaps = [(stamp(s) - stamp(e)).total_seconds() for e, s in zip(ends, starts[1:], strict=False)]
    assert all(1.0 <= gap < 1.5 for gap in gaps), gaps
    assert "service 6/10 done: denied: unknown charge point" in output
    assert len(lines(output, r"done: ticket \(unplugged\) 1\.000 kWh 0\.40 €")) == 9
    assert re.search(r"9/10 charged\s+│\s+9\.000\s+│\s+3\.60", output), output
    assert len(lines(output, r"│ CP\d\s+│ ticket \(unplugged\)")) == 9
    assert len(lines(history, r"│ CP\d\s+│\s+1\.000 │ 0\.40 €/kWh │\s+0\.40 € │ unplugged")) == 9


def test_request_shows_every_step_and_live_progress(
    central: CentralProcess, drivers: Drivers
) -> None:
    drivers.add("D1")

    async def scenario() -> tuple[int, str]:
        async with charge_points(
            central, "CP1", serving={"CP1": {"readings": 4, "every": 1.0, "plug_after": 0.5}}
        ):
            return await asyncio.to_thread(drivers.run, "request", "CP1", "--kwh", "7.5")

    code, output = asyncio.run(scenario())
    assert code == 0, output
    assert "CP1: requesting a charge (target 7.5 kWh)" in output
    assert re.search(
        r"CP1: authorised at 0\.40 €/kWh \(session [\w-]+\); waiting for the vehicle", output
    ), output
    assert "CP1: vehicle plugged in, charging" in output
    progress = [line.split(" ", 1)[1].rsplit(" ", 1) for line in lines(output, PROGRESS.pattern)]
    assert [figures for figures, _ in progress] == [
        "charging CP1: 11.0 kW 0.500 kWh 0.20 €",
        "charging CP1: 11.0 kW 1.000 kWh 0.40 €",
        "charging CP1: 11.0 kW 1.500 kWh 0.60 €",
        "charging CP1: 11.0 kW 2.000 kWh 0.80 €",
    ], output
    elapsed = [int(clock[:2]) * 60 + int(clock[3:]) for _, clock in progress]
    assert elapsed == sorted(elapsed) and 3 <= elapsed[-1] <= 5, output  # one reading a second
    assert re.search(
        r"ticket CP1: 2\.000 kWh x 0\.40 €/kWh = 0\.80 € \(unplugged\) \S+-\S+ session", output
    ), output


def test_denied_requests_give_the_reason_and_a_non_zero_exit(
    central: CentralProcess, drivers: Drivers, free_port: Callable[[], int]
) -> None:
    drivers.add("D1")
    d2 = drivers.add("D2")

    async def scenario() -> dict[str, tuple[int, str]]:
        results = {}
        async with charge_points(central, "CP1", "CP2") as cps:
            results["unknown"] = await asyncio.to_thread(drivers.run, "request", "NOPE")
            other = await driver(central.addr, "D2", d2)  # D2 holds CP1: authorised, unplugged
            other.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
            await cps["CP1"].accept_authorization()
            await other.recv_until({MessageType.CHARGE_AUTHORIZED}, 5)
            results["busy"] = await asyncio.to_thread(drivers.run, "request", "CP1")
            r = await asyncio.to_thread(central.post, "/chargepoints/CP2/stop")
            assert r.status_code == 200
            await central.wait_state("CP2", "STOPPED")
            results["stopped"] = await asyncio.to_thread(drivers.run, "request", "CP2")
            results["secret"] = await asyncio.to_thread(
                drivers.run, "request", "CP2", secret="not-the-secret"
            )
            await other.close()
        return results

    results = asyncio.run(scenario())
    for key, reason in (
        ("unknown", "NOPE: denied: unknown charge point"),
        ("busy", "CP1: denied: charge point is busy"),
        ("stopped", "CP2: denied: charge point is out of order"),
    ):
        code, output = results[key]
        assert code == 1 and reason in output, output
    code, output = results["secret"]
    assert code == 4, output
    assert "Central refused driver D1: wrong secret, or no such driver" in output
    # Central down: a clear line, retries with back-off, exit 3, never a traceback.
    code, output = drivers.run(
        "list", central=f"127.0.0.1:{free_port()}", retry_for=1.5, timeout=20
    )
    assert code == 3, output
    assert re.search(r"Cannot reach Central at 127\.0\.0\.1:\d+: .*; retrying in", output)
    assert re.search(r"Cannot reach Central at .*; gave up after 1\.5 s$", output, re.M)
    assert "Traceback" not in output


def test_driver_killed_mid_charge_sees_the_charge_and_missed_ticket(
    central: CentralProcess, drivers: Drivers
) -> None:
    drivers.add("D1")

    async def charge_until_killed(cp: ScriptedCP, kwh: float) -> str:
        """Start a charge with a driver process, SIGKILL the process mid-charge."""
        proc = drivers.start("request", "CP1")
        session_id = await cp.accept_authorization()
        cp.plug(session_id)
        cp.telemetry(session_id, kwh)
        await asyncio.to_thread(proc.wait_for_line, PROGRESS.pattern, 10)
        proc.kill()
        return session_id

    async def scenario() -> dict[str, tuple[int, str]]:
        seen = {}
        async with charge_points(central, "CP1") as cps:
            cp = cps["CP1"]
            # 1. Killed; the charge goes on; status shows it; status --follow to the ticket.
            session_id = await charge_until_killed(cp, 1.5)
            cp.telemetry(session_id, 2.0)
            seen["running"] = await asyncio.to_thread(drivers.run, "status")
            follow = drivers.start("status", "--follow")
            await asyncio.to_thread(follow.wait_for_line, "Central still holds it|charging CP1")
            await asyncio.sleep(0.3)
            cp.telemetry(session_id, 2.5)
            await asyncio.to_thread(follow.wait_for_line, r"2\.500 kWh 1\.00 €")
            await cp.unplug(session_id, 3.0)
            seen["follow"] = (await asyncio.to_thread(follow.wait), follow.output())
            # 2. Killed; the charge ends while no driver is connected; status shows the ticket.
            session_id = await charge_until_killed(cp, 1.0)
            await cp.unplug(session_id, 1.25)
            seen["missed"] = await asyncio.to_thread(drivers.run, "status")
            seen["again"] = await asyncio.to_thread(drivers.run, "status")
        return seen

    seen = asyncio.run(scenario())
    code, output = seen["running"]
    assert code == 0, output
    assert re.search(r"charge in progress: charging at CP1: 2\.000 kWh 0\.80 € so far", output)
    assert "follow it with: ev-driver --id D1 --central" in output
    code, output = seen["follow"]
    assert code == 0, output
    assert lines(output, PROGRESS.pattern), output
    assert re.search(r"ticket CP1: 3\.000 kWh x 0\.40 €/kWh = 1\.20 € \(unplugged\)", output)
    code, output = seen["missed"]
    assert code == 0, output
    assert re.search(r"missed while away: ticket CP1: 1\.250 kWh x 0\.40 €/kWh = 0\.50 €", output)
    assert "no charge in progress" in output
    code, output = seen["again"]
    assert code == 0 and "missed while away" not in output, output  # delivered once


def test_run_against_a_real_engine_and_monitor(
    central: CentralProcess, drivers: Drivers, tmp_path: Path, free_port: Callable[[], int]
) -> None:
    """``python -m cp_engine`` + ``python -m cp_monitor`` (secret already provisioned)."""
    drivers.add("D1")
    data = tmp_path / "cp-data"
    data.mkdir()
    secret_file = data / "CPR.secret"
    secret_file.write_text(provision_cp(central.db_url, "CPR", "Madrid", "0.50"))
    secret_file.chmod(0o600)
    port = free_port()

    def process(name: str, *args: str) -> ServiceProcess:
        proc = ServiceProcess(
            [sys.executable, "-m", name, "--id", "CPR", "--central", str(central.addr), *args],
            env={"EV_DATA_DIR": str(data)},
            log_path=tmp_path / "cp-logs" / f"{name}.log",
            name=name,
        ).start()
        drivers.started.append(proc)  # stopped with the drivers
        return proc

    engine = process("cp_engine", "--listen", f"127.0.0.1:{port}", "--auto-plug", "--speed", "60")
    engine.wait_ready("cp_engine")
    process(
        "cp_monitor",
        "--engine",
        f"127.0.0.1:{port}",
        "--secret-file",
        str(secret_file),
        "--registry",
        f"https://127.0.0.1:{free_port()}",  # not needed: the secret exists
        "--auto",
    )

    async def engine_online() -> None:
        await central.wait_state("CPR", "ACTIVATED", timeout=20)
        while not (await asyncio.to_thread(central.cp, "CPR"))["engine_connected"]:
            await asyncio.sleep(0.1)

    asyncio.run(asyncio.wait_for(engine_online(), 20))
    services = tmp_path / "real.txt"
    services.write_text("CPR 0.5\nCPR 0.4\n", encoding="utf-8")
    code, output = drivers.run("run", str(services), "--pause", "1", timeout=60)
    assert code == 0, output
    assert len(lines(output, r"CPR: vehicle plugged in, charging")) == 2, output
    assert lines(output, PROGRESS.pattern), output
    tickets = lines(output, r"ticket CPR: [\d.]+ kWh x 0\.50 €/kWh = [\d.]+ € \(target_reached\)")
    assert len(tickets) == 2, output
    assert re.search(r"2/2 charged", output), output
