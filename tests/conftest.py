"""Fixtures shared by every tier: ports, data directories, databases, the broker."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.infra import EmbeddedBroker
from common.procs import ServiceProcess
from common.tcp import free_port as _free_port
from tests.support.auditkeys import TEST_AUDIT_KEY
from tests.support.broker import start_broker
from tests.support.databases import fresh_postgres_database, postgres_server
from tests.support.scrypt import CHEAP_SCRYPT_FLOOR

# Test credentials use the cheap scrypt cost of tests/support/scrypt.py, below the production
# floor clients hold Central to (n=2**14). Every client of the suite, in this process or a
# child (ServiceProcess passes os.environ on), accepts it through this test-only setting.
os.environ.setdefault(*CHEAP_SCRYPT_FLOOR)
# Every service a test starts (Registry, Central, 'ev-central drivers add') inherits this
# environment, so all of them sign the one audit chain with one key, as in a deployment.
os.environ["EV_AUDIT_KEY"] = TEST_AUDIT_KEY
# With one key and one session-wide broker, a checkpoint one test's Central published
# would be read by the next test's Central as its own chain's: only the tests that ask
# for checkpoints (with a broker of their own) get them.
os.environ["EV_AUDIT_CHECKPOINT_INTERVAL"] = "86400"


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A function returning a TCP port on 127.0.0.1 that was free a moment ago."""

    return _free_port


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """Admin URL of the PostgreSQL server, or a skip saying why there is none."""
    try:
        with postgres_server() as url:
            yield url
    except LookupError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'evcharging.db'}"


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_admin_url) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs twice: on SQLite and on PostgreSQL."""
    return str(request.getfixturevalue(f"{request.param}_url"))


# -- the embedded broker and service processes ------------------------------------------


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded broker for the whole session; tests must not stop it."""
    started = start_broker(tmp_path_factory.mktemp("broker"))
    yield started
    started.stop()


@pytest.fixture
def fresh_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of this test's own, free to be stopped and restarted."""
    started = start_broker(tmp_path / "broker")
    yield started
    started.stop()


@pytest.fixture
def services(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start service processes: ``services(args, env={...}, name="registry")``.

    Every process is stopped at teardown; if the test failed, each one's log tail is
    printed, so it shows in the failure report.
    """
    started: list[ServiceProcess] = []
    failed_before = request.session.testsfailed

    def start(
        args: list[str],
        env: dict[str, str] | None = None,
        name: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> ServiceProcess:
        label = name or Path(args[0]).name
        log_path = tmp_path / "logs" / f"{len(started):02d}-{label}.log"
        process = ServiceProcess(args, env or {}, log_path, label, stop_signal).start()
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()
    if request.session.testsfailed > failed_before:
        for process in started:
            print(f"\n----- {process.name} (exit {process.returncode}) -----\n{process.tail()}")
