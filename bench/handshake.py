"""Handshake benchmark: authentications per second, in process and against a real Central.

    python -m bench.handshake [--seconds 2] [--e2e-cps 200] [--e2e-prod-cps 40] [--no-e2e]

**In process** (one thread, no I/O): ``ClientHandshake`` and ``ServerHandshake`` from
``common.protocol.handshake`` run a whole HELLO → CHALLENGE → PROOF → WELCOME exchange
against a stored verifier, again and again for ``--seconds``. The CPU time of each side is
measured separately (``time.thread_time``). Cases: a monitor (or driver) at the production
scrypt cost (n=2**14, r=8, p=1), the same at n=1024 (the load generator's and the tests'
cost), and an engine (HKDF of the session key its monitor got, no scrypt).

SCRAM puts the slow hash on the *client*: it derives its key from the secret with scrypt on
every handshake; the server only compares against the stored verifier (a few HMACs, SHA-256
and one Fernet token wrapping the session key). ``server_max_auth_per_s`` is what one core
of Central could do if the clients were free.

**End to end** (unless ``--no-e2e``): Central as a real process (``python -m central`` on a
fresh SQLite database, ``EV_SCRYPT_N=1024``) on 127.0.0.1; ``--e2e-cps`` CPs provisioned at
n=1024 and ``--e2e-prod-cps`` at n=2**14. For each group, ``--rounds`` times: every monitor
connects with ``common.client.connect`` (``--concurrency`` at once), then every engine with
its monitor's session key, then all close. Each authentication of a monitor also moves its
CP out of DISCONNECTED (a state change and an event written to the database), as in a
reconnect storm. Reported: auth/s (wall clock), and CPU per auth of the client process
(this one, one asyncio thread, where scrypt runs) and of Central (from /proc). On a
2-core machine the scrypt rows are bound by the client's scrypt, the engine rows show
Central's own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from bench import cli
from bench.harness import LOAD_SCRYPT, progress
from bench.procs import CentralHandle, Children, proc_stats, start_central
from bench.report import report
from common.client import ClientLink, connect, scrypt_floor
from common.db.provision import numbered, provision
from common.protocol.handshake import ClientHandshake, Role
from common.protocol.handshake_server import ServerHandshake
from common.protocol.keys import (
    DEFAULT_PARAMS,
    ScryptParams,
    Verifier,
    make_verifier,
    new_secret,
    new_session_key,
    salted_key,
    verifier_from_key,
)

__all__ = ["main"]

Row = dict[str, Any]


# ------------------------------------------------------------------ in process
@dataclass(frozen=True)
class _Principal:
    role: Role
    verifier: Verifier
    secret: str | None = None
    session_key: bytes | None = None


def _principal(role: Role, params: ScryptParams | None) -> _Principal:
    if params is None:
        key = new_session_key()
        return _Principal(role, verifier_from_key(key), session_key=key)
    secret = new_secret()
    return _Principal(role, make_verifier(secret, params), secret=secret)


def _one_handshake(who: _Principal, params: ScryptParams) -> tuple[float, float]:
    """Run one full handshake; return (client CPU s, server CPU s)."""
    tick: Callable[[], float] = time.thread_time
    t0 = tick()
    client = ClientHandshake(
        who.role,
        "CP00001",
        secret=who.secret,
        session_key=who.session_key,
        clock=time.time,
        min_n=scrypt_floor(),  # the benchmark's own cheap credentials (bench/__init__.py)
    )
    hello = client.start()
    t1 = tick()
    server = ServerHandshake(lambda role, pid: who.verifier, time.time, decoy_params=params)
    challenge = server.receive(hello)
    t2 = tick()
    proof = client.receive(challenge)
    assert proof is not None
    t3 = tick()
    welcome = server.receive(proof)
    t4 = tick()
    client.receive(welcome)
    t5 = tick()
    if client.session_key is None or client.session_key != server.session_key:
        raise RuntimeError(f"handshake failed: {server.failed_reason}")
    return (t1 - t0) + (t3 - t2) + (t5 - t4), (t2 - t1) + (t4 - t3)


def in_process(name: str, role: Role, params: ScryptParams | None, seconds: float) -> Row:
    """Handshakes back to back for ``seconds``; CPU per side per auth."""
    who = _principal(role, params)
    decoy = params or DEFAULT_PARAMS
    _one_handshake(who, decoy)  # warm-up
    client_s = server_s = 0.0
    count = 0
    start = time.perf_counter()
    while (now := time.perf_counter()) - start < seconds or count < 3:
        c, s = _one_handshake(who, decoy)
        client_s, server_s, count = client_s + c, server_s + s, count + 1
    return _row(name, params, count, now - start, client_s, server_s)


def _row(
    case: str,
    params: ScryptParams | None,
    auths: int,
    wall_s: float,
    client_s: float,
    server_s: float,
) -> Row:
    server_ms = 1000 * server_s / auths
    return {
        "case": case,
        "scrypt_n": params.n if params else "-",
        "auths": auths,
        "auth_per_s": round(auths / wall_s, 1),
        "client_cpu_ms": round(1000 * client_s / auths, 3),
        "server_cpu_ms": round(server_ms, 3),
        "server_max_auth_per_s": round(1000 / server_ms) if server_ms > 0 else "-",
    }


def scrypt_ms(params: ScryptParams, repeat: int = 5) -> float:
    """Best wall time of one scrypt (the client's slow hash) at ``params``."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        salted_key("x" * 43, b"s" * 16, params)
        best = min(best, time.perf_counter() - start)
    return round(best * 1000, 2)


# ------------------------------------------------------------------ end to end
@dataclass
class _Group:
    name: str  # also the CP id prefix
    params: ScryptParams
    count: int
    creds: dict[str, str] = field(default_factory=dict)


class _Meter:
    """Wall time, this process's CPU and Central's CPU over a phase."""

    def __init__(self, pid: int) -> None:
        self._pid = pid
        self._marks = self._now()

    def _now(self) -> tuple[float, float, float]:
        return time.perf_counter(), time.process_time(), proc_stats(self._pid).cpu_seconds

    def lap(self) -> tuple[float, float, float]:
        """(wall, client CPU, Central CPU) seconds since the last lap."""
        now = self._now()
        wall, client, server = (b - a for a, b in zip(self._marks, now, strict=True))
        self._marks = now
        return wall, client, server


async def _connect_all(
    connects: list[Callable[[], Awaitable[ClientLink]]], concurrency: int
) -> list[ClientLink]:
    gate = asyncio.Semaphore(concurrency)

    async def one(make: Callable[[], Awaitable[ClientLink]]) -> ClientLink:
        async with gate:
            return await make()

    return list(await asyncio.gather(*(one(make) for make in connects)))


async def _measure_group(
    central: CentralHandle, group: _Group, rounds: int, concurrency: int
) -> list[Row]:
    """``rounds`` connect storms: all monitors, then all engines, then all close."""
    addr = central.addr
    totals = {"monitor": [0.0, 0.0, 0.0, 0.0], "engine": [0.0, 0.0, 0.0, 0.0]}
    for r in range(1, rounds + 1):
        meter = _Meter(central.proc.pid)
        monitors = await _connect_all(
            [
                partial(connect, addr, Role.MONITOR, cp_id, secret=secret, timeout=60)
                for cp_id, secret in group.creds.items()
            ],
            concurrency,
        )
        m_lap = meter.lap()
        # Central's writer may still be committing the monitors' state changes now;
        # that CPU is counted to the engines (a small bias against them).
        engines = await _connect_all(
            [
                partial(connect, addr, Role.ENGINE, cp_id, session_key=link.session_key)
                for cp_id, link in zip(group.creds, monitors, strict=True)
            ],
            concurrency,
        )
        e_lap = meter.lap()
        for kind, links, lap in (("monitor", monitors, m_lap), ("engine", engines, e_lap)):
            t = totals[kind]
            t[0] += len(links)
            for i, value in enumerate(lap, 1):
                t[i] += value
        print(
            f"  group {group.name} round {r}/{rounds}: {len(monitors)} monitors in "
            f"{m_lap[0]:.2f} s, {len(engines)} engines in {e_lap[0]:.2f} s",
            flush=True,
        )
        await asyncio.gather(*(link.close() for link in engines + monitors))
        await asyncio.sleep(1.0)  # let Central record the disconnections before the next round
    return [
        _row(
            f"e2e {kind} (n={group.params.n} group)",
            group.params if kind == "monitor" else None,
            int(n),
            wall,
            cpu_c,
            cpu_s,
        )
        for kind, (n, wall, cpu_c, cpu_s) in totals.items()
    ]


def end_to_end(groups: list[_Group], rounds: int, concurrency: int, tmp: Path) -> list[Row]:
    """Central as a process; connect storms per group; one row per group and role."""
    url = f"sqlite:///{tmp}/ev.db"
    for group in groups:
        with progress(f"provisioning {group.count} CPs at scrypt n={group.params.n}"):
            made = provision(url, numbered(group.name, group.count), params=group.params)
            group.creds = made.cps
    with Children() as children:
        with progress("starting Central"):
            central = start_central(children, url, tmp, extra_args=["--heartbeat-timeout", "60"])
        rows: list[Row] = []
        for group in groups:
            with progress(f"connect storms, group {group.name} (n={group.params.n})"):
                rows += asyncio.run(_measure_group(central, group, rounds, concurrency))
        return rows


# ------------------------------------------------------------------ main
def _arguments(parser: argparse.ArgumentParser) -> None:
    cli.number(parser, "--seconds", float, 2.0, "time per in-process case")
    cli.number(
        parser,
        "--e2e-cps",
        int,
        200,
        "CPs (monitor + engine each) authenticating per round at n=1024",
    )
    cli.number(
        parser, "--e2e-prod-cps", int, 40, "CPs per round at the production n=2**14; 0 skips them"
    )
    cli.number(parser, "--rounds", int, 2, "connect storms per group")
    cli.number(parser, "--concurrency", int, 32, "handshakes in flight at once")
    parser.add_argument("--no-e2e", action="store_true", help="in-process cases only")


def _run(args: argparse.Namespace) -> int:
    cli.positive(args, "seconds", "rounds", "concurrency")
    if min(args.e2e_cps, args.e2e_prod_cps) < 0:
        raise cli.UsageError("--e2e-cps and --e2e-prod-cps must not be negative")
    rows: list[Row] = []
    for name, role, params in (
        ("in-process monitor, production", Role.MONITOR, DEFAULT_PARAMS),
        ("in-process monitor, load", Role.MONITOR, LOAD_SCRYPT),
        ("in-process engine", Role.ENGINE, None),
    ):
        with progress(name):
            rows.append(in_process(name, role, params, args.seconds))
    if not args.no_e2e:
        groups = [
            _Group(name, params, count)
            for name, params, count in (
                ("L", LOAD_SCRYPT, args.e2e_cps),
                ("P", DEFAULT_PARAMS, args.e2e_prod_cps),
            )
            if count > 0
        ]
        with cli.work_directory(None, "bench-handshake-") as tmp:
            rows += end_to_end(groups, args.rounds, args.concurrency, tmp)
    meta = {
        "scrypt_ms": {str(p.n): scrypt_ms(p) for p in (DEFAULT_PARAMS, LOAD_SCRYPT)},
        "production_params": vars(DEFAULT_PARAMS),
        "e2e": None
        if args.no_e2e
        else {
            "cps_load": args.e2e_cps,
            "cps_production": args.e2e_prod_cps,
            "rounds": args.rounds,
            "concurrency": args.concurrency,
            "database": "sqlite",
        },
        "notes": "client_cpu_ms e2e = this process (asyncio + scrypt); server = Central, /proc",
    }
    report("handshake", rows, meta)
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main("handshake", __doc__, argv, _arguments, _run)


if __name__ == "__main__":
    raise SystemExit(main())
