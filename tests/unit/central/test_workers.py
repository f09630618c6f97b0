"""``ev-central --workers N``: each worker's command line, and what is refused."""

from __future__ import annotations

import sys

import pytest

from central.workers import check_workers, worker_argv
from common.config import HostPort
from common.errors import ConfigError

PG = "postgresql+psycopg2://ev@db/ev"
LISTEN, API = HostPort("0.0.0.0", 7000), HostPort("0.0.0.0", 8001)


def test_each_worker_gets_its_own_ports_and_the_rest_of_the_command_line() -> None:
    argv = ["--listen", "0.0.0.0:7000", "--workers=3", "--api=0.0.0.0:8001", "--max-kw", "50"]
    command = worker_argv(argv, 2, LISTEN, API, HostPort("central.example", 7000))
    assert command[:3] == [sys.executable, "-m", "central"]
    rest = command[3:]
    assert rest == [
        "--max-kw",
        "50",
        "--listen",
        "0.0.0.0:7002",
        "--api",
        "0.0.0.0:8003",
        "--advertise",
        "central.example:7002",
        "--workers",
        "1",
        "--no-console",
    ]


def test_several_workers_need_postgresql_and_fixed_ports() -> None:
    check_workers(1, "sqlite:///x.db", LISTEN, API)  # one is always fine
    check_workers(4, PG, LISTEN, API)
    with pytest.raises(ConfigError, match="need PostgreSQL"):
        check_workers(2, "sqlite:///x.db", LISTEN, API)
    with pytest.raises(ConfigError, match="fixed ports"):
        check_workers(2, PG, HostPort("0.0.0.0", 0), API)
