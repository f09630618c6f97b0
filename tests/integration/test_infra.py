"""Real processes: the embedded broker (start, stop, restart, clear failures), test services.

The broker's checks made before it starts a process are in tests/unit/test_broker.py.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from common.errors import EVChargingError
from common.events import TOPIC
from common.events.kafka import admin_config, describe_topic
from common.infra import BrokerError, EmbeddedBroker, ensure_topic
from common.procs import ProcessFailed, ServiceProcess


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)  # the broker led its own process group: is anyone left in it?
    except ProcessLookupError:
        return True
    return False


def _refuses(bootstrap: str) -> bool:
    host, port = bootstrap.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), 1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_starts_on_a_free_port_with_the_topic_and_stops_completely(tmp_path: Path) -> None:
    log_path = tmp_path / "tansu.log"
    with EmbeddedBroker(log_path=log_path, partitions=3) as broker:
        assert broker.port != 0 and broker.bootstrap == f"127.0.0.1:{broker.port}"
        assert broker.running
        admin = AdminClient(admin_config(broker.bootstrap))
        metadata = admin.list_topics(timeout=5)
        assert sorted(metadata.topics[TOPIC].partitions) == [0, 1, 2]
        pid = broker.pid
        assert pid is not None
    assert not broker.running
    assert _gone(pid)
    assert _refuses(broker.bootstrap)
    assert log_path.exists()


def test_restart_keeps_the_port_and_recreates_the_topic(fresh_broker: EmbeddedBroker) -> None:
    admin = AdminClient(admin_config(fresh_broker.bootstrap))
    before = describe_topic(admin, TOPIC)
    bootstrap, old_pid = fresh_broker.bootstrap, fresh_broker.pid
    fresh_broker.stop()
    assert _refuses(bootstrap)
    fresh_broker.restart()
    assert fresh_broker.bootstrap == bootstrap and fresh_broker.pid != old_pid
    after = describe_topic(admin, TOPIC)
    assert before is not None and after is not None
    assert after.partitions == 3
    assert after.topic_id != before.topic_id  # memory storage: a new topic, offsets from 0


def test_ensure_topic_creates_once(broker: EmbeddedBroker) -> None:
    assert ensure_topic(broker.bootstrap, "evcharging.test-ensure", partitions=2) is True
    assert ensure_topic(broker.bootstrap, "evcharging.test-ensure", partitions=2) is False
    assert ensure_topic(broker.bootstrap) is False  # the events topic exists already
    info = describe_topic(AdminClient(admin_config(broker.bootstrap)), "evcharging.test-ensure")
    assert info is not None and info.partitions == 2


def test_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = EmbeddedBroker(port=port, log_path=tmp_path / "tansu.log")
        with pytest.raises(BrokerError, match=f"port 127.0.0.1:{port} is already in use"):
            broker.start()
    assert not broker.running


def test_a_broker_that_dies_at_start_reports_its_log_tail(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'error: storage engine exploded' >&2\nexit 3\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(binary=fake, log_path=tmp_path / "tansu.log")
    with pytest.raises(BrokerError, match="exited with code 3") as caught:
        broker.start(timeout=10)
    assert "storage engine exploded" in str(caught.value)
    assert "\n" not in str(caught.value)  # one line
    assert caught.value.log_path == tmp_path / "tansu.log"


def test_a_broker_that_never_answers_times_out(tmp_path: Path) -> None:
    fake = tmp_path / "tansu"
    fake.write_text("#!/bin/sh\necho 'listening... not really'\nexec sleep 30\n")
    fake.chmod(0o755)
    broker = EmbeddedBroker(binary=fake, log_path=tmp_path / "tansu.log")
    with pytest.raises(
        BrokerError, match=r"did not answer on 127\.0\.0\.1:\d+ within 1 s.*not really"
    ):
        broker.start(timeout=1)
    assert not broker.running


def test_service_processes_are_watched_and_stopped(
    services: Callable[..., ServiceProcess], free_port: Callable[[], int]
) -> None:
    port = free_port()
    server = services(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        env={"EV_TEST_MARKER": "1"},
        name="http",
    )
    server.wait_for_port("127.0.0.1", port, timeout=10)
    stubborn = services(
        [
            sys.executable,
            "-c",
            "import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            "print('ready', os.environ['EV_TEST_MARKER'], flush=True); time.sleep(60)",
        ],
        env={"EV_TEST_MARKER": "42"},
        name="stubborn",
    )
    assert stubborn.wait_for_line(r"ready (\d+)", timeout=10).group(1) == "42"
    assert server.stop() == -signal.SIGTERM
    assert stubborn.stop(timeout=0.5) == -signal.SIGKILL  # ignored SIGTERM: killed
    crashing = services([sys.executable, "-c", "print('boom'); raise SystemExit(3)"])
    with pytest.raises(AssertionError, match=r"(?s)exited with code 3 before printing.*boom"):
        crashing.wait_for_line("never", timeout=10)


_ANNOUNCER = """\
import sys, time
from common.ready import announce
print("Human line: listening", flush=True)
for port in sys.argv[1:]:
    announce("svc", listen=f"127.0.0.1:{port}", log="/tmp/a b.log")
if sys.argv[1:] == ["0"]:
    raise SystemExit(0)
time.sleep(60)
"""


def test_wait_ready_reads_the_ready_line_of_the_latest_start(
    services: Callable[..., ServiceProcess],
) -> None:
    svc = services([sys.executable, "-c", _ANNOUNCER, "7000", "7001", "7000"], name="svc")
    assert svc.wait_ready("svc", 10) == {"listen": "127.0.0.1:7000", "log": "/tmp/a b.log"}
    assert svc.wait_ready("svc", 10, where={"listen": "127.0.0.1:7001"})["listen"].endswith("1")
    svc.wait_ready("svc", 10, where={"listen": "127.0.0.1:7000"}, count=2)
    with pytest.raises(ProcessFailed, match=r"did not announce other ready within 0\.2 s"):
        svc.wait_ready("other", 0.2)
    assert not svc.running  # a failed wait leaves nothing running

    once = services([sys.executable, "-c", _ANNOUNCER, "0"], name="once")
    assert once.wait(10) == 0
    assert once.wait_ready("svc", 1)["listen"] == "127.0.0.1:0"
    once.args[-1] = "9"  # started again: the first start's line no longer counts
    once.start()
    assert once.wait_ready("svc", 10)["listen"] == "127.0.0.1:9"
    assert once.output().count("EV-READY svc") == 2


def test_a_child_that_exits_before_it_is_ready_fails_the_wait(
    services: Callable[..., ServiceProcess],
) -> None:
    crashing = services([sys.executable, "-c", "print('boom'); raise SystemExit(3)"])
    with pytest.raises(ProcessFailed, match=r"(?s)exited with code 3 before announcing svc.*boom"):
        crashing.wait_ready("svc", timeout=10)
    assert issubclass(ProcessFailed, AssertionError)  # a failed wait fails a test as such
    assert issubclass(ProcessFailed, EVChargingError)


def test_a_stdin_pipe_reaches_the_child_and_is_closed_on_stop(tmp_path: Path) -> None:
    args = [sys.executable, "-c", "print('got', input(), flush=True); input()"]
    echo = ServiceProcess(args, log_path=tmp_path / "echo.log", stdin_pipe=True).start()
    try:
        echo.send("hello")
        echo.wait_for_line("got hello", timeout=10)
    finally:
        echo.stop()
    assert echo.process is not None and echo.process.stdin is not None
    assert echo.process.stdin.closed
    deaf = ServiceProcess(args, log_path=tmp_path / "deaf.log").start()
    try:
        with pytest.raises(ProcessFailed, match="no stdin pipe"):
            deaf.send("hello")
        assert deaf.wait(10) == 1  # stdin is /dev/null: input() fails at once
    finally:
        deaf.stop()
