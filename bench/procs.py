"""What the load benchmarks need around the load generator: processes and their cost.

(Used by bench/loadgen/, bench/scale.py, bench/throughput.py and bench/bare.py.)

- :func:`provision` puts N charge points and D drivers in a fresh database (cheap scrypt,
  through ``common.db.provision``).
- :func:`start_central` / :func:`start_bare` run Central or the bare bound server as real
  child processes; :class:`Children` stops every child at the end, also on error or Ctrl+C.
- :func:`proc_stats` reads a process's CPU time and resident memory from /proc.
- :func:`profile` attaches py-spy to a running process; :func:`top_functions` sums it up.
- :func:`raise_nofile` lifts RLIMIT_NOFILE for tens of thousands of sockets.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from common.config import HostPort
from common.db.provision import Provisioned, numbered
from common.db.provision import provision as provision_principals
from common.limits import raise_open_files_limit
from common.procs import ServiceProcess
from common.protocol.keys import ScryptParams
from common.tcp import free_port

__all__ = [
    "BENCH_SCRYPT",
    "CentralHandle",
    "Children",
    "ProcStats",
    "proc_stats",
    "profile",
    "provision",
    "raise_nofile",
    "start_bare",
    "start_central",
    "top_functions",
]

# Each authentication costs the client one scrypt: the lowest cost keeps 10k logins cheap.
BENCH_SCRYPT = ScryptParams(n=16)
NOFILE_WANTED = 65536


@dataclass(frozen=True)
class ProcStats:
    cpu_seconds: float  # user + system, all threads
    rss_bytes: int


def proc_stats(pid: int) -> ProcStats:
    """CPU seconds (user + system) and resident bytes of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return ProcStats(cpu, int(fields[21]) * os.sysconf("SC_PAGE_SIZE"))


def raise_nofile(wanted: int = NOFILE_WANTED) -> int:
    """Raise this process's (and its future children's) open-file limit as far as allowed.

    The hard limit is raised too when we may (root); returns the soft limit now in force.
    """
    return raise_open_files_limit(wanted)


def provision(url: str, cps: int, drivers: int = 0) -> Provisioned:
    """``cps`` registered charge points (CP00000...) and ``drivers`` drivers (D00000...)."""
    return provision_principals(
        url, numbered("CP", cps), params=BENCH_SCRYPT, drivers=numbered("D", drivers)
    )


class Children:
    """Every child process of a benchmark; leaving the ``with`` block stops them all.

    Children run in their own process group (``ServiceProcess``), so Ctrl+C reaches only
    us; they are stopped in reverse start order, SIGKILLed after a grace.
    """

    def __init__(self) -> None:
        self._procs: list[ServiceProcess] = []

    def add(self, proc: ServiceProcess) -> ServiceProcess:
        self._procs.append(proc)
        return proc

    def stop(self, proc: ServiceProcess) -> None:
        proc.stop(signal.SIGTERM, timeout=15)
        if proc in self._procs:
            self._procs.remove(proc)

    def stop_all(self) -> None:
        while self._procs:
            self.stop(self._procs[-1])

    def __enter__(self) -> Children:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


@dataclass(frozen=True)
class CentralHandle:
    proc: ServiceProcess
    addr: HostPort
    api: str  # http://127.0.0.1:PORT/api
    token: str


def start_central(
    children: Children,
    url: str,
    workdir: Path,
    *,
    extra_args: Sequence[str] = (),
    name: str = "central",
    ports: tuple[int, int] | None = None,
) -> CentralHandle:
    """Start ``python -m central`` on 127.0.0.1 (console off) and wait until it serves.

    Its log is ``workdir/NAME.log`` (a restarted Central needs a name of its own).
    ``ports``: its TCP and API ports (default: free ones).
    """
    port, api_port = ports or (free_port(), free_port())
    token = secrets.token_urlsafe(16)
    proc = children.add(
        ServiceProcess(
            [
                sys.executable,
                "-m",
                "central",
                "--listen",
                f"127.0.0.1:{port}",
                "--api",
                f"127.0.0.1:{api_port}",
                "--no-console",
                *extra_args,
            ],
            env={
                "EV_DATABASE_URL": url,
                "EV_OPERATOR_TOKEN": token,
                "EV_SCRYPT_N": str(BENCH_SCRYPT.n),
                "EV_DATA_DIR": str(workdir / "data"),
            },
            log_path=workdir / f"{name}.log",
            name=name,
        ).start()
    )
    proc.wait_ready("central", timeout=120)
    return CentralHandle(
        proc, HostPort("127.0.0.1", port), f"http://127.0.0.1:{api_port}/api", token
    )


def start_bare(
    children: Children, key: bytes, workdir: Path, *, uvloop: bool = False
) -> tuple[ServiceProcess, HostPort]:
    """Start ``python -m bench.bare`` (the bound server); returns it and its address."""
    port = free_port()
    args = [sys.executable, "-m", "bench.bare", "--port", str(port)]
    if uvloop:
        args.append("--uvloop")
    proc = children.add(
        ServiceProcess(
            args, env={"EV_BENCH_KEY": key.decode()}, log_path=workdir / "bare.log", name="bare"
        ).start()
    )
    proc.wait_ready("bench-bare", timeout=30)
    return proc, HostPort("127.0.0.1", port)


def profile(children: Children, pid: int, seconds: float, out: Path) -> ServiceProcess | None:
    """Sample ``pid`` with py-spy for ``seconds`` into ``out`` (collapsed stacks).

    Returns the py-spy process (wait for it), or None when py-spy is not installed.
    """
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        print("py-spy is not installed (pip install py-spy): no profile", flush=True)
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    args = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
    args += ["--rate", "50", "--format", "raw", "--nonblocking", "--output", str(out)]
    return children.add(
        ServiceProcess(args, log_path=out.with_suffix(".log"), name="py-spy").start()
    )


_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def _frame_name(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    short = "/".join(Path(match["file"]).parts[-2:]) if match["file"] else ""
    return f"{match['func']} ({short})"


def top_functions(collapsed: Path, limit: int = 20) -> list[dict[str, object]]:
    """Self and inclusive share of samples per function, from py-spy's collapsed output."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        names = [_frame_name(frame) for frame in stack.split(";")]
        own[names[-1]] = own.get(names[-1], 0) + count
        for name in set(names):
            inclusive[name] = inclusive.get(name, 0) + count
    rows = sorted(own.items(), key=lambda kv: -kv[1])[:limit]
    return [
        {
            "function": name,
            "self_pct": round(100 * n / total, 1),
            "inclusive_pct": round(100 * inclusive[name] / total, 1),
        }
        for name, n in rows
    ]
