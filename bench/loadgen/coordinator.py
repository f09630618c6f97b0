"""The load generator's coordinator: worker processes sharing a fleet, run step by step.

Each call (connect, charge, measure, drain, reconnect) is sent to every worker at once
over its pipe; their answers are merged (``bench.loadgen.metrics``).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.connection
from typing import Any

from bench import procs
from bench.loadgen.metrics import Histogram, Window
from bench.loadgen.mix import Mix, Plan, Target
from bench.loadgen.worker import worker_main
from common.db.provision import Provisioned

__all__ = ["LoadGenerator"]


class LoadGenerator:
    """Worker processes sharing a fleet; each call runs a step in all of them at once.

    with LoadGenerator(target, fleet, mix, workers=2) as gen:
        gen.connect(); gen.charge(); window = gen.measure(30)
    """

    def __init__(
        self,
        target: Target,
        fleet: Provisioned,
        mix: Mix,
        *,
        workers: int = 2,
    ) -> None:
        cps = list(fleet.cps.items())
        supplying = round(len(cps) * mix.supplying) if mix.engines else 0
        drivers = list(zip(fleet.drivers.items(), cps[:supplying], strict=False))
        self._ctx = multiprocessing.get_context("spawn")
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._procs: list[Any] = []
        self._plans = [
            Plan(
                i,
                cps[i::workers],
                [(d, s, cp) for (d, s), (cp, _) in drivers[i::workers]],
            )
            for i in range(workers)
        ]
        self._target, self._mix = target, mix

    def __enter__(self) -> LoadGenerator:
        procs.raise_nofile()
        for plan in self._plans:
            mine, theirs = self._ctx.Pipe()
            proc = self._ctx.Process(
                target=worker_main,
                args=(theirs, self._target, plan, self._mix, 1 / len(self._plans)),
                name=f"loadgen-{plan.index}",
                daemon=True,
            )
            proc.start()
            self._pipes.append(mine)
            self._procs.append(proc)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def _all(self, *command: Any, timeout: float = 600) -> list[Any]:
        for pipe in self._pipes:
            pipe.send(command)
        out = []
        for pipe, proc in zip(self._pipes, self._procs, strict=True):
            if not pipe.poll(timeout):
                raise RuntimeError(f"{proc.name} did not answer {command[0]!r} in {timeout} s")
            out.append(pipe.recv())
        return out

    def connect(self) -> dict[str, Any]:
        """Connect and authenticate every CP (monitor, engine), then every driver."""
        return self._merge_connect(self._all("connect"))

    def reconnect(self, host: str, port: int, within: float = 120) -> dict[str, Any]:
        """Every CP and driver logs in again, to a Central restarted at ``host:port``."""
        parts = self._all("reconnect", host, port, within, timeout=within + 600)
        out = self._merge_connect(parts)
        times = [p["activated_s"] for p in parts]
        out["activated_s"] = None if None in times else max(times)
        out["not_activated"] = sum(p["not_activated"] for p in parts)
        return out

    @staticmethod
    def _merge_connect(parts: list[dict[str, Any]]) -> dict[str, Any]:
        hist = Histogram()
        for part in parts:
            hist.merge(Histogram(*part["connect"]))
        return {
            "cps": sum(p["cps"] for p in parts),
            "cps_failed": sum(p["cps_failed"] for p in parts),
            "drivers": sum(p["drivers"] for p in parts),
            "drivers_failed": sum(p["drivers_failed"] for p in parts),
            "seconds": max(p["seconds"] for p in parts),
            "per_cp_p50_ms": hist.ms(0.5),
            "per_cp_p99_ms": hist.ms(0.99),
        }

    def charge(self) -> None:
        """Drivers start asking for charges; the operator starts issuing commands."""
        self._all("charge")

    def measure(self, seconds: float, rate: float | None = None) -> Window:
        """Run for ``seconds`` (heart-beats at ``rate`` msg/s in all, or 1 Hz per CP)."""
        share = None if rate is None else rate / len(self._pipes)
        parts = self._all("measure", seconds, share, timeout=seconds + 120)
        return Window.merged([Window.of_part(part) for part in parts])

    def drain(self, grace: float = 5.0) -> dict[str, int]:
        """Stop sending and count frames still unanswered after ``grace`` seconds."""
        parts = self._all("drain", grace, timeout=grace + 60)
        return {key: sum(p[key] for p in parts) for key in parts[0]}

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("close",))
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self._pipes.clear()
        self._procs.clear()
