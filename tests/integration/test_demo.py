"""``evcharging demo``: the whole system as real child processes, and its pure parts.

The process tests run ``python -m demo demo`` with every port 0 and check what
a user sees (the service lines, the summary) and that nothing is left running afterwards:
every process whose command line or environment names the run's data directory, and the
broker (found by its port), must be gone.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import signal
import socket
import sys
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError
from common.procs import ServiceProcess
from demo.plan import CITIES, make_plan, service_file, temperatures_file
from demo.screen import Status, stats_since, status_line, summary_lines
from demo.settings import DEFAULT_PORTS, resolve_settings
from demo.supervisor import ChildStatus, Notice, Supervisor, backoff_delay
from driver.servicefile import parse_service_file

REPO = Path(__file__).resolve().parents[2]
ALL_PORTS_0 = [f"--{name}-port=0" for name in DEFAULT_PORTS]


# -- pure parts ------------------------------------------------------------------------


def test_plan_spreads_cps_over_cities_with_different_prices() -> None:
    plan = make_plan(7, 3, random.Random(1))
    assert [cp.id for cp in plan.cps] == [f"CP{i}" for i in range(1, 8)]
    assert [cp.location for cp in plan.cps[:5]] == [c.name for c in CITIES]
    assert plan.cps[5].city == CITIES[0]
    assert len({c.price for c in CITIES}) == len(CITIES)
    assert [c.name for c in plan.cities] == [c.name for c in CITIES]


def test_each_driver_starts_at_its_own_cp_with_a_short_charge() -> None:
    plan = make_plan(3, 3, random.Random(2))
    assert [d.services[0] for d in plan.drivers] == [
        ("CP1", Decimal("1.5")),
        ("CP2", Decimal("1.5")),
        ("CP3", Decimal("1.5")),
    ]
    ids = {cp.id for cp in plan.cps}
    for driver in plan.drivers:
        parsed = parse_service_file(service_file(driver))  # what ev-driver will read
        assert parsed.problems == ()
        assert len(parsed.services) == len(driver.services)
        assert {s.cp_id for s in parsed.services} <= ids
        assert all(s.target_kwh and 1 <= s.target_kwh <= 6 for s in parsed.services)


def test_no_cps_means_no_drivers_and_temperatures_are_warm() -> None:
    assert make_plan(0, 2).drivers == ()
    text = temperatures_file(CITIES)
    assert "Madrid: 18" in text
    assert all(c.temperature_c > 1 for c in CITIES)  # no alert unless the user edits


def test_backoff_doubles_up_to_thirty_seconds() -> None:
    assert [backoff_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


class FakeChild:
    def __init__(self, name: str, looping: bool = False) -> None:
        self.name = name
        self.looping = looping
        self.restarts = 0
        self.code: int | None = None
        self.starts = 0
        self.log_path = Path("/nonexistent/log")

    @property
    def running(self) -> bool:
        return self.starts > 0 and self.code is None

    @property
    def pid(self) -> int | None:
        return 100 + self.starts

    def start(self) -> None:
        self.starts += 1
        self.code = None

    def exit_code(self) -> int | None:
        return self.code

    def describe_exit(self, code: int) -> str:
        return f"exited with code {code}"

    def signal_stop(self) -> None:
        self.code = 0

    def wait(self, timeout: float) -> bool:
        return self.code is not None

    def kill(self) -> None:
        self.code = -9


def test_supervisor_reports_a_crash_and_restarts_with_backoff() -> None:
    now = [0.0]
    notices: list[Notice] = []
    sup = Supervisor(notices.append, clock=lambda: now[0])
    child = FakeChild("central")
    sup.start(child)
    now[0] = 5.0
    child.code = 1
    sup.poll()
    assert notices[-1].level == "error"
    assert notices[-1].text.startswith("exited with code 1; restarting in 1 s")
    assert sup.status() == [ChildStatus("central", False, 1, 1.0)]
    now[0] = 6.0
    sup.poll()
    assert child.starts == 2 and notices[-1].text == "restarted (pid 102)"
    child.code = 1  # again at once: the wait doubles
    sup.poll()
    assert "restarting in 2 s" in notices[-1].text
    now[0] = 7.5
    sup.poll()
    assert child.starts == 2  # not yet
    now[0] = 8.0
    sup.poll()
    assert child.starts == 3
    now[0] = 60.0  # up for a while: the next crash starts the back-off afresh
    child.code = 1
    sup.poll()
    assert "restarting in 1 s" in notices[-1].text


def test_a_looping_child_starts_its_next_round_quietly() -> None:
    now = [0.0]
    notices: list[Notice] = []
    sup = Supervisor(notices.append, clock=lambda: now[0])
    driver = FakeChild("driver D1", looping=True)
    sup.start(driver)
    driver.code = 0
    sup.poll()
    assert sup.status() == [ChildStatus("driver D1", True, 0, None)]  # between rounds
    now[0] = 1.0
    sup.poll()
    assert driver.starts == 2 and notices == []


def test_a_stopping_supervisor_restarts_nothing() -> None:
    notices: list[Notice] = []
    sup = Supervisor(notices.append, clock=lambda: 0.0)
    child = FakeChild("web")
    sup.start(child)
    sup.stopping = True
    child.code = 1
    sup.poll()
    assert child.starts == 1 and notices == []


def test_status_and_summary_say_what_a_user_needs() -> None:
    stats = {
        "sessions_finished": 3,
        "energy_kwh": 7.5,
        "revenue_eur": 2.6,
        "per_cp": [{"cp_id": "CP1", "sessions": 1, "kwh": 7.5, "eur": 2.6}],
    }
    cps: list[dict[str, Any]] = [
        {"id": "CP1", "state": "SUPPLYING", "session": {"driver_id": "D1"}},
        {"id": "CP2", "state": "ACTIVATED", "session": None},
    ]
    children = [ChildStatus("central", False, 1, 4.0), ChildStatus("web", True, 0)]
    line = status_line(Status(10, None, children, cps, stats))
    assert "1 ACTIVATED, 1 SUPPLYING" in line
    assert "charging CP1→D1" in line
    assert "3 sessions finished, 7.500 kWh, 2.60 €" in line
    assert "central restarting in 4 s" in line
    summary = summary_lines(stats, 61.2, "--duration reached")
    assert summary[:4] == [
        "Summary after 61 s (--duration reached):",
        "  Sessions finished: 3",
        "  Energy: 7.500 kWh",
        "  Revenue: 2.60 €",
    ]
    assert "CP1" in summary[4] and "1 session " in summary[4]
    assert summary_lines(None, 1, "x")[1].startswith("  totals unavailable")


def test_the_summary_counts_this_run_only() -> None:
    before = {
        "sessions_finished": 2,
        "energy_kwh": 5.0,
        "revenue_eur": 1.75,
        "per_cp": [{"cp_id": "CP1", "sessions": 2, "kwh": 5.0, "eur": 1.75}],
    }
    after = {
        "sessions_finished": 4,
        "energy_kwh": 9.5,
        "revenue_eur": 3.64,
        "active_sessions": 0,
        "per_cp": [
            {"cp_id": "CP1", "sessions": 2, "kwh": 5.0, "eur": 1.75},
            {"cp_id": "CP2", "sessions": 2, "kwh": 4.5, "eur": 1.89},
        ],
    }
    delta = stats_since(before, after)
    assert (delta["sessions_finished"], delta["energy_kwh"], delta["revenue_eur"]) == (2, 4.5, 1.89)
    assert delta["per_cp"] == [{"cp_id": "CP2", "sessions": 2, "kwh": 4.5, "eur": 1.89}]
    assert stats_since(None, after) is after


def _namespace(**ports: int | None) -> argparse.Namespace:
    values = {f"{name}_port": ports.get(name) for name in DEFAULT_PORTS}
    return argparse.Namespace(cps=1, drivers=1, duration=None, data_dir=None, **values)


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_port_given_by_flag_is_an_error(listener: int, tmp_path: Path) -> None:
    args = _namespace(web=listener)
    with pytest.raises(ConfigError, match=f"--web-port: port {listener} is already in use"):
        resolve_settings(args, env={})


def test_a_taken_default_port_falls_back_with_a_note(
    listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(DEFAULT_PORTS, "web", listener)
    monkeypatch.setitem(DEFAULT_PORTS, "api", listener)
    settings = resolve_settings(_namespace(), env={})
    assert settings.ports.web == 0 and settings.ports.api == 0
    assert any(f"port {listener} (web dashboard) is taken" in n for n in settings.notes)
    assert settings.data_dir.is_dir() and settings.data_dir_is_temp
    settings.data_dir.rmdir()


def test_tokens_are_fresh_unless_given(tmp_path: Path) -> None:
    first = resolve_settings(_namespace(**dict.fromkeys(DEFAULT_PORTS, 0)), env={})
    second = resolve_settings(
        _namespace(**dict.fromkeys(DEFAULT_PORTS, 0)),
        env={"EV_OPERATOR_TOKEN": "op-token-from-env"},
    )
    assert first.operator_token != second.operator_token != first.provisioning_token
    assert second.operator_token == "op-token-from-env"
    for settings in (first, second):
        settings.data_dir.rmdir()


# -- the real thing --------------------------------------------------------------------


def _demo(tmp_path: Path, *args: str) -> tuple[ServiceProcess, Path]:
    data = tmp_path / "demo-data"
    env = {"PYTHONPATH": str(REPO)}
    proc = ServiceProcess(
        [
            sys.executable,
            "-m",
            "demo",
            "demo",
            *ALL_PORTS_0,
            "--data-dir",
            str(data),
            *args,
        ],
        env=env,
        log_path=tmp_path / "demo.out",
        name="evcharging demo",
    )
    proc.start()
    return proc, data


def _mentions(pid: str, needle: bytes) -> bool:
    for name in ("cmdline", "environ"):
        try:
            if needle in Path(f"/proc/{pid}/{name}").read_bytes():
                return True
        except OSError:  # gone meanwhile, or not ours
            pass
    return False


def _leftovers(data: Path, output: str) -> list[str]:
    """Processes still naming the data directory, and the broker by its port."""
    needles = [str(data).encode()]
    broker = re.search(r"Broker \(Kafka API\)\s+(\S+)", output)
    if broker:
        needles.append(f"tcp://{broker.group(1)}".encode())
    me = str(os.getpid())
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if pid != me and any(_mentions(pid, n) for n in needles):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if cmd:  # a zombie has none: it is dead, waiting to be reaped
                found.append(f"{pid}: {cmd.decode(errors='replace')[:200]}")
    return found


def _wait_gone(data: Path, output: str, timeout: float = 5) -> list[str]:
    """What is still running after ``timeout``; it is then killed, so no test leaks it."""
    deadline = time.monotonic() + timeout
    while (left := _leftovers(data, output)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for line in left:
        with contextlib.suppress(OSError):
            os.kill(int(line.split(":", 1)[0]), signal.SIGKILL)
    return left


def _summary(output: str) -> tuple[int, float, float]:
    sessions = re.search(r"^  Sessions finished: (\d+)$", output, re.M)
    kwh = re.search(r"^  Energy: ([\d.]+) kWh$", output, re.M)
    eur = re.search(r"^  Revenue: ([\d.]+) €$", output, re.M)
    assert sessions and kwh and eur, f"no summary in:\n{output[-3000:]}"
    return int(sessions.group(1)), float(kwh.group(1)), float(eur.group(1))


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_an_unattended_run_charges_and_leaves_nothing_running(tmp_path: Path) -> None:
    proc, data = _demo(tmp_path, "--duration", "60", "--cps", "3", "--drivers", "2")
    try:
        code = proc.wait(timeout=105)
    finally:
        proc.stop(signal.SIGINT, timeout=15)
        out = proc.output()
        left = _wait_gone(data, out)
    assert left == []
    assert code == 0, out[-3000:]
    for label in ("Broker (Kafka API)", "Registry", "Central", "API_Central", "Weather office"):
        assert re.search(rf"^  {re.escape(label)}\s+\S+", out, re.M), label
    assert re.search(r"^  Web dashboard\s+http://127\.0\.0\.1:\d+/", out, re.M)
    assert re.search(r"^  Charge point CP3\s+Valencia, 0\.29 €/kWh", out, re.M)
    assert re.search(r"^Operator token: \S{20,}", out, re.M)
    assert re.search(r"^Dashboard: http://127\.0\.0\.1:\d+/ ", out, re.M)
    assert "(--duration reached)" in out
    sessions, kwh, eur = _summary(out)
    assert sessions >= 1 and kwh > 0 and eur > 0, out[-2000:]
    assert "Traceback" not in out
    assert (data / "evcharging.db").is_file()
    assert (data / "logs" / "central.log").is_file()


@pytest.mark.integration
@pytest.mark.timeout(90)
def test_a_crashed_child_is_restarted_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    proc, data = _demo(tmp_path, "--cps", "1", "--drivers", "1")
    try:
        proc.wait_ready("demo", timeout=60)
        engine = _find(data, b"cp_engine")
        os.killpg(engine, signal.SIGKILL)
        proc.wait_for_line(r"✗ CP1 engine: killed by SIGKILL; restarting in 1 s", timeout=10)
        proc.wait_for_line(r"CP1 engine: restarted \(pid \d+\)", timeout=10)
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl+C sends to the demo
        code = proc.wait(timeout=40)
    finally:
        proc.stop(signal.SIGKILL)
        out = proc.output()
        left = _wait_gone(data, out)
    assert left == []
    assert code in (0, 130), out[-3000:]
    assert "(stopped by SIGINT)" in out
    _summary(out)
    assert "Everything is stopped." in out


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_ctrl_c_while_starting_stops_what_was_started(tmp_path: Path) -> None:
    proc, data = _demo(tmp_path, "--cps", "2", "--drivers", "1")
    try:
        proc.wait_for_line(r"^Starting the weather office", timeout=40)
        os.kill(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=40)
    finally:
        proc.stop(signal.SIGKILL)
        out = proc.output()
        left = _wait_gone(data, out)
    assert left == []
    assert code in (0, 130), out[-3000:]
    assert "Traceback" not in out
    assert "Everything is stopped." in out


def _find(data: Path, module: bytes, timeout: float = 10) -> int:
    """The pid of the demo's child running ``python -m MODULE``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if module in cmd and _mentions(pid, str(data).encode()):
                return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"no {module.decode()} process of this demo")
