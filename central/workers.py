"""``ev-central --workers N``: N Central processes on one machine, each on a port of its own.

Worker ``i`` listens on ``--listen`` PORT + i and serves API_Central on ``--api`` PORT + i
(``--advertise`` PORT + i when given), all on the same PostgreSQL database; CPs and
drivers are given every worker's address (``EV_CENTRAL_ADDR=h:7000,h:7001,...``).
Not ``SO_REUSEPORT`` on one port: a CP's monitor and engine must reach the same process
(docs/central.md, "Several Centrals"). This process only supervises: it restarts a
worker that dies (its CPs have moved to the others meanwhile) and stops them all on
SIGINT or SIGTERM.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

from sqlalchemy.engine import make_url

from common.config import HostPort
from common.errors import ConfigError

__all__ = ["check_workers", "run_workers", "worker_argv"]

log = logging.getLogger(__name__)

RESTART_AFTER = 1.0  # seconds before a dead worker is started again
STOP_GRACE = 10.0
_PLACED = ("--listen", "--api", "--advertise", "--workers")


def check_workers(workers: int, database_url: str, listen: HostPort, api: HostPort) -> None:
    """Several workers need PostgreSQL and fixed ports.

    Raises:
        ConfigError: SQLite, or a port 0.
    """
    if workers <= 1:
        return
    if make_url(database_url).get_backend_name() != "postgresql":
        raise ConfigError(
            "--workers",
            f"{workers} Central processes need PostgreSQL (EV_DATABASE_URL=postgresql+"
            "psycopg2://...); on SQLite Central runs as one process",
        )
    if listen.port == 0 or api.port == 0:
        raise ConfigError("--workers", "give --listen and --api fixed ports: worker i uses PORT+i")


def worker_argv(
    argv: Sequence[str], i: int, listen: HostPort, api: HostPort, advertise: HostPort | None
) -> list[str]:
    """The command line of worker ``i``: ours with its own addresses, one process, no console."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _PLACED:
            skip = "=" not in arg
            continue
        if arg != "--no-console":
            out.append(arg)
    out += ["--listen", str(HostPort(listen.host, listen.port + i))]
    out += ["--api", str(HostPort(api.host, api.port + i))]
    if advertise is not None:
        out += ["--advertise", str(HostPort(advertise.host, advertise.port + i))]
    return [sys.executable, "-m", "central", *out, "--workers", "1", "--no-console"]


def run_workers(
    argv: Sequence[str], workers: int, listen: HostPort, api: HostPort, advertise: HostPort | None
) -> int:
    """Start the workers and keep them running until SIGINT or SIGTERM."""
    commands = [worker_argv(argv, i, listen, api, advertise) for i in range(workers)]
    stopping = False

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    procs = [subprocess.Popen(command) for command in commands]
    last = listen.port + workers - 1
    print(f"Supervising {workers} Central workers on ports {listen.port}-{last}", flush=True)
    while not stopping:
        time.sleep(0.2)
        for i, proc in enumerate(procs):
            if proc.poll() == 2:  # a worker refused its settings: so would a restart
                stopping = True
                break
            if proc.poll() is not None and not stopping:
                log.warning(
                    "Central worker died; starting it again",
                    extra={"fields": {"worker": i, "code": proc.returncode}},
                )
                time.sleep(RESTART_AFTER)
                procs[i] = subprocess.Popen(commands[i])
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_GRACE
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return 2 if any(proc.returncode == 2 for proc in procs) else 0
