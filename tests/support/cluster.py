"""Several Centrals on one PostgreSQL database, and charge points as real processes.

Each CP is a real ``python -m cp_engine`` and ``python -m cp_monitor`` given the list of
every Central's address (``--central h1:p1,h2:p2,...``), so what a test sees is what the
real clients do when a Central refuses them (``moved``) or dies.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import Centrals
from common.procs import ServiceProcess
from tests.support.central import CentralProcess, provision_cp, start_central

__all__ = ["Cluster", "FieldCP"]


@dataclass
class FieldCP:
    """One charge point: its engine and monitor processes."""

    cp_id: str
    engine: ServiceProcess
    monitor: ServiceProcess


@dataclass
class Cluster:
    """N Centrals on one database, the CPs started against all of them."""

    root: Path
    db_url: str
    centrals: list[CentralProcess]
    free_port: Callable[[], int]
    cps: list[FieldCP] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        root: Path,
        db_url: str,
        n: int,
        free_port: Callable[[], int],
        *,
        kafka: str | None = None,
    ) -> Cluster:
        centrals = [
            start_central(root, db_url, free_port(), free_port(), name=f"central{i}", kafka=kafka)
            for i in range(n)
        ]
        return cls(root, db_url, centrals, free_port)

    @property
    def addrs(self) -> Centrals:
        return Centrals(c.addr for c in self.centrals)

    def add_cp(self, cp_id: str, *engine_args: str, speed: str = "120") -> FieldCP:
        """Provision the CP in the database and start its engine and monitor."""
        secret = provision_cp(self.db_url, cp_id)
        home = self.root / cp_id
        (home / f"cp-{cp_id}").mkdir(parents=True, exist_ok=True)
        secret_file = home / f"cp-{cp_id}" / "secret"
        secret_file.write_text(secret + "\n")
        os.chmod(secret_file, 0o600)
        port = self.free_port()
        env = {"EV_DATA_DIR": str(home)}
        logs = self.root / "logs"
        engine = ServiceProcess(
            [
                sys.executable,
                "-m",
                "cp_engine",
                "--id",
                cp_id,
                "--listen",
                f"127.0.0.1:{port}",
                "--central",
                str(self.addrs),
                "--speed",
                speed,
                "--auto-plug",
                *engine_args,
            ],
            env=env,
            log_path=logs / f"{cp_id}-engine.log",
            name=f"{cp_id} engine",
        ).start()
        engine.wait_ready("cp_engine", 30)
        monitor = ServiceProcess(
            [
                sys.executable,
                "-m",
                "cp_monitor",
                "--id",
                cp_id,
                "--location",
                "Madrid",
                "--engine",
                f"127.0.0.1:{port}",
                "--central",
                str(self.addrs),
                "--registry",
                "https://127.0.0.1:9/",  # never asked: the secret is already there
                "--auto",
            ],
            env=env,
            log_path=logs / f"{cp_id}-monitor.log",
            name=f"{cp_id} monitor",
        ).start()
        made = FieldCP(cp_id, engine, monitor)
        self.cps.append(made)
        return made

    def alive(self) -> list[CentralProcess]:
        return [c for c in self.centrals if c.proc.running]

    async def wait_all(
        self, state: str, timeout: float = 30, *, engines: bool = True
    ) -> dict[str, dict[str, Any]]:
        """Every CP in ``state`` (engine connected) as every live Central shows it."""
        deadline = time.monotonic() + timeout
        while True:
            seen: dict[str, dict[str, Any]] = {}
            ok = True
            for central in self.alive():
                shown = await asyncio.to_thread(central.get, "/chargepoints")
                by_id = {cp["id"]: cp for cp in shown.json()["chargepoints"]}
                for cp in self.cps:
                    got = by_id.get(cp.cp_id)
                    wrong = got is None or got["state"] != state
                    if wrong or (engines and not got["engine_connected"]):  # type: ignore[index]
                        ok = False
                    seen[f"{central.addr} {cp.cp_id}"] = got or {}
            if ok:
                return seen
            if time.monotonic() > deadline:
                summary = {k: (v.get("state"), v.get("central")) for k, v in seen.items()}
                raise AssertionError(f"not all {state} after {timeout} s: {summary}")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        for cp in self.cps:
            cp.monitor.stop()
            cp.engine.stop()
        for central in self.centrals:
            central.proc.stop()

    def tails(self) -> str:
        procs = [c.proc for c in self.centrals]
        procs += [p for cp in self.cps for p in (cp.engine, cp.monitor)]
        return "\n".join(f"----- {p.name} -----\n{p.tail(40)}" for p in procs)
