"""Registrations at a real ``ev-registry`` while slow clients trickle request heads at it.

    python -m bench.slowclients                      # 2 attackers x 16 connections, 20 CPs
    python -m bench.slowclients --attackers 3 --connections 32 --registrations 40

For each scenario (no attack, then the attack) ``--registrations`` CPs register at once
from 127.0.0.1 (one connection each, production scrypt cost unless ``--scrypt-n``) while
``--attackers`` loopback aliases (127.0.0.2...) each hold ``--connections`` TLS
connections that send one header byte a second. Reports the registrations' latency and
how many failed (5 s client timeout). The Registry runs with its defaults: 16 threads,
4 requests per address at once, a 10 s head deadline (common/http_guard.py).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from bench import cli
from bench.harness import percentile
from bench.report import report
from bench.slowloris import SlowClient, can_use_source
from common.procs import ServiceProcess

TIMEOUT = 5.0  # seconds a registration may take before it counts as failed


@contextlib.contextmanager
def registry(workdir: Path, token: str, scrypt_n: int) -> Iterator[tuple[str, Path]]:
    """A registry on SQLite in ``workdir``; yields its URL and CA file."""
    args = [sys.executable, "-m", "registry", "--listen", "127.0.0.1:0"]
    args += ["--data-dir", str(workdir), "--max-failures-per-ip", "100000"]
    env = {"EV_PROVISIONING_TOKEN": token, "EV_SCRYPT_N": str(scrypt_n)}
    proc = ServiceProcess(args, env, workdir / "registry.log", "registry").start()
    try:
        ready = proc.wait_ready("registry", timeout=60)
        yield ready["url"], Path(ready["ca"])
    finally:
        proc.stop()


def register_all(url: str, ca: Path, token: str, prefix: str, count: int) -> dict[str, Any]:
    def one(i: int) -> float | None:
        started = time.monotonic()
        try:
            with requests.Session() as http:
                response = http.post(
                    f"{url}/api/chargepoints",
                    json={"id": f"{prefix}-{i}", "location": "Madrid"},
                    headers={"Authorization": f"Bearer {token}"},
                    verify=str(ca),
                    timeout=TIMEOUT,
                )
        except requests.RequestException:
            return None
        return time.monotonic() - started if response.status_code == 201 else None

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        times = list(pool.map(one, range(count)))
    done = [t * 1000 for t in times if t is not None]
    return {
        "registrations": count,
        "failed": count - len(done),
        "p50_ms": percentile(done, 50),
        "p99_ms": percentile(done, 99),
        "max_ms": max(done, default=float("nan")),
        "all_s": time.monotonic() - started,
    }


def _arguments(parser: argparse.ArgumentParser) -> None:
    cli.number(parser, "--attackers", int, 2, "attacking addresses")
    cli.number(parser, "--connections", int, 16, "per attacking address")
    cli.number(parser, "--registrations", int, 20, "at once, per scenario")
    cli.number(parser, "--scrypt-n", int, 2**14, "the Registry's cost")


def _run(args: argparse.Namespace) -> int:
    sources = [f"127.0.0.{2 + i}" for i in range(args.attackers)]
    for source in sources:
        if why := can_use_source(source):
            print(f"bench.slowclients: {why}")
            return 2
    token = secrets.token_urlsafe(24)
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-slow-") as tmp,
        registry(Path(tmp), token, args.scrypt_n) as (url, ca),
    ):
        port = int(url.rsplit(":", 1)[1])
        calm = register_all(url, ca, token, "A", args.registrations)
        rows.append({"scenario": "no attack", **calm})
        with contextlib.ExitStack() as attack:
            clients = [
                attack.enter_context(SlowClient(port, source, args.connections, ca=ca))
                for source in sources
            ]
            deadline = time.monotonic() + 15
            while sum(c.held for c in clients) < 4 * len(clients):  # each its share
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            held = sum(c.held for c in clients)
            result = register_all(url, ca, token, "B", args.registrations)
            rows.append({"scenario": f"{held} slow connections held", **result})
    report(
        "slowclients",
        rows,
        meta={
            "attackers": args.attackers,
            "connections_per_attacker": args.connections,
            "scrypt_n": args.scrypt_n,
            "cpus": os.cpu_count(),
        },
    )
    return 0 if all(row["failed"] == 0 for row in rows) else 1


def main(argv: list[str] | None = None) -> int:
    return cli.main("slowclients", __doc__, argv, _arguments, _run)


if __name__ == "__main__":
    raise SystemExit(main())
