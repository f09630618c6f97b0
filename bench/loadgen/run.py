"""One load run against a fresh Central: provision, start it, connect, load, measure.

What ``python -m bench.loadgen`` and ``bench.scale`` run per fleet size: a result row with
the connect time, Central's memory and CPU, the merged window's latencies and errors, and
with ``storm`` the connect storm after Central is killed and restarted under the fleet.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.loadgen.coordinator import LoadGenerator
from bench.loadgen.mix import Mix, Target

__all__ = ["RunOptions", "run_against_central"]

STORM_PROFILE_S = 20  # how long a profile of the connect storm samples Central


@dataclass(frozen=True)
class RunOptions:
    cps: int = 1000
    duration: float = 30.0
    warmup: float = 5.0
    workers: int = 2
    mix: Mix = field(default_factory=Mix)
    central_args: tuple[str, ...] = ()
    profile: Path | None = None  # py-spy Central during the window, collapsed stacks here
    storm: bool = False  # then SIGKILL Central, restart it, and every CP logs in again


def _storm(
    opts: RunOptions,
    children: procs.Children,
    old: procs.CentralHandle,
    url: str,
    work: Path,
    gen: LoadGenerator,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Kill Central, start it again on the same database, and let the whole fleet log in."""
    log("connect storm: SIGKILL Central, start it again, every CP logs in at once ...")
    old.proc.kill()
    central = procs.start_central(
        children, url, work, extra_args=opts.central_args, name="central-restarted"
    )
    spy = None
    if opts.profile is not None:
        out = opts.profile.with_name(f"{opts.profile.stem}-storm{opts.profile.suffix}")
        spy = procs.profile(children, central.proc.pid, STORM_PROFILE_S, out)
    before = procs.proc_stats(central.proc.pid)
    again = gen.reconnect(*central.addr)
    after = procs.proc_stats(central.proc.pid)
    if spy is not None:
        spy.wait(STORM_PROFILE_S + 60)
    logins = 2 * again["cps"] + again["drivers"] if opts.mix.engines else again["cps"]
    cpu = after.cpu_seconds - before.cpu_seconds
    log(
        f"all logged in again in {again['seconds']:.1f} s; every monitor ACTIVATED after "
        f"{again['activated_s'] if again['activated_s'] is not None else 'never'} s"
    )
    return {
        "storm_logins": logins,
        "storm_failed": again["cps_failed"] + again["drivers_failed"],
        "storm_s": round(again["seconds"], 1),
        "storm_activated_s": None
        if again["activated_s"] is None
        else round(again["activated_s"], 1),
        "storm_not_activated": again["not_activated"],
        "storm_central_cpu_s": round(cpu, 1),
        "storm_central_ms_per_login": round(1000 * cpu / max(1, logins), 2),
    }


def run_against_central(opts: RunOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Provision, start Central, connect the fleet, run the mix, measure; one result row."""
    procs.raise_nofile()
    drivers = round(opts.cps * opts.mix.supplying)
    with tempfile.TemporaryDirectory(prefix="evbench-") as tmp, procs.Children() as children:
        work = Path(tmp)
        url = f"sqlite:///{work}/ev.db"
        log(f"provisioning {opts.cps} charge points and {drivers} drivers ...")
        fleet = procs.provision(url, opts.cps, drivers)
        central = procs.start_central(children, url, work, extra_args=opts.central_args)
        pid = central.proc.pid
        idle = procs.proc_stats(pid)
        target = Target(*central.addr, api=central.api, token=central.token)
        with LoadGenerator(target, fleet, opts.mix, workers=opts.workers) as gen:
            log(f"connecting {opts.cps} monitors + engines and {drivers} drivers ...")
            before = procs.proc_stats(pid)
            conn = gen.connect()
            after_connect = procs.proc_stats(pid)
            log(
                f"connected {conn['cps']} CPs ({conn['cps_failed']} failed) and "
                f"{conn['drivers']} drivers in {conn['seconds']:.1f} s"
            )
            gen.charge()
            log(f"warming up {opts.warmup:g} s (charges start, operator commands) ...")
            gen.measure(opts.warmup)
            log(f"measuring {opts.duration:g} s ...")
            spy = None
            if opts.profile is not None:
                spy = procs.profile(children, pid, opts.duration, opts.profile)
            start = procs.proc_stats(pid)
            window = gen.measure(opts.duration)
            end = procs.proc_stats(pid)
            if spy is not None:
                spy.wait(60)
            drained = gen.drain()
            storm = _storm(opts, children, central, url, work, gen, log) if opts.storm else {}
    row = {
        "cps": opts.cps,
        "connections": 2 * conn["cps"] + conn["drivers"] if opts.mix.engines else conn["cps"],
        "connect_s": round(conn["seconds"], 1),
        "connect_failed": conn["cps_failed"] + conn["drivers_failed"],
        "central_cpu_s_connecting": round(after_connect.cpu_seconds - before.cpu_seconds, 1),
        "central_rss_idle_mib": round(idle.rss_bytes / 2**20, 1),
        "central_rss_mib": round(end.rss_bytes / 2**20, 1),
        "rss_kib_per_cp": round((end.rss_bytes - idle.rss_bytes) / 1024 / max(1, opts.cps), 1),
        "central_cpu_pct": round(100 * (end.cpu_seconds - start.cpu_seconds) / window.seconds, 1),
        **window.summary(),
        "unanswered_at_end": drained["unanswered"] + drained["unanswered_on_dropped"],
        "heartbeat_interval_s": round(1 / opts.mix.heartbeat_hz, 2),
        **storm,
    }
    row["connect_per_cp_p99_ms"] = conn["per_cp_p99_ms"]
    return row
