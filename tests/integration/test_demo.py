"""``evcharging demo``: the whole system as real child processes.

These tests run ``python -m demo demo`` with every port 0 and check what a user sees (the
service lines, the summary) and that nothing is left running afterwards: every process
whose command line or environment names the run's data directory, and the broker (found
by its port), must be gone. The demo's pure parts are tested in tests/unit/demo/.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest

from common.procs import ServiceProcess
from demo.settings import DEFAULT_PORTS

REPO = Path(__file__).resolve().parents[2]
ALL_PORTS_0 = [f"--{name}-port=0" for name in DEFAULT_PORTS]


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
