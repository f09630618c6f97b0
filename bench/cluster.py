"""Several Centrals on one PostgreSQL: how the sustained rate grows with processes, and fail-over.

    python -m bench.cluster --processes 1,2,4 --cps 2000
    python -m bench.cluster --processes '' --kills 10 --failover-cps 200

Scaling: for each N, N Central processes on a fresh PostgreSQL database; the fleet is
split in N, each share's monitors logging in to its own Central (as CPs given a list of
addresses spread themselves), one load-generator process per Central. The aggregate
heart-beat rate steps up (x ``--growth``) until a step fails (p99 ACK >= ``--p99-ms``,
100 by default, any error, or < 97 % answered); reported per N: CPs connected, the best
step, that rate held once for ``--duration`` s (and whether it held), every Central's
CPU and the load generators'. On a machine with fewer cores than N Centrals plus their
load generators and PostgreSQL, the curve flattens at the machine, not at Central: the
CPU columns say which.

Fail-over: 3 Centrals; ``--failover-cps`` real monitor sessions (``cp_monitor``'s
:class:`~cp_monitor.central_link.CentralSession`, its back-off and all) given every
address. ``--kills`` times: SIGKILL the Central serving the most CPs, time until every CP
is ACTIVATED again as a survivor's API_Central shows it (served by a live Central), then
start the killed one again at its address. Reported: p50, p99 and max of those times.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import cli, procs
from bench.loadgen.coordinator import LoadGenerator
from bench.loadgen.metrics import Window
from bench.loadgen.mix import Mix, Target
from bench.report import report
from common.central_api import CentralApiClient, CentralApiError
from common.chargepoint.secret_file import SecretFile
from common.chargepoint.terminal import Level
from common.config import Centrals
from common.db.provision import Provisioned
from common.db.scratch import scratch_postgres
from cp_monitor.central_link import CentralSession
from cp_monitor.health import HealthTracker

__all__ = ["main"]

DEFAULT_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
P99_LIMIT_MS = 100.0
ANSWERED = 0.97
MIX = Mix(engines=False, supplying=0.0, operator_rate=0.0)


# ------------------------------------------------------------------ scaling
def _measure(
    gens: list[LoadGenerator], pool: ThreadPoolExecutor, seconds: float, rate: float
) -> Window:
    share = rate / len(gens)
    return Window.merged(list(pool.map(lambda g: g.measure(seconds, share), gens)))


def _step(
    gens: list[LoadGenerator],
    pool: ThreadPoolExecutor,
    pids: list[int],
    rate: float,
    seconds: float,
    p99_limit: float = P99_LIMIT_MS,
) -> tuple[bool, dict[str, Any]]:
    _measure(gens, pool, 2.0, rate)  # settle at the new rate
    before = [procs.proc_stats(pid).cpu_seconds for pid in pids]
    window = _measure(gens, pool, seconds, rate)
    after = [procs.proc_stats(pid).cpu_seconds for pid in pids]
    answered = window.counters["acked"] / window.seconds >= ANSWERED * rate
    ok = window.errors == 0 and window.ack.quantile(0.99) * 1000 < p99_limit and answered
    cpu = [round(100 * (a - b) / window.seconds) for a, b in zip(after, before, strict=True)]
    row = {
        "offered_msg_s": round(rate),
        **window.summary(),
        "centrals_cpu_pct": cpu,
        "sustained": ok,
    }
    print(
        f"  {rate:8.0f} msg/s offered: {row['rate_msg_s']:8.0f} answered, p99 "
        f"{row['ack_p99_ms']} ms, Centrals' CPU {cpu} %, load generators' CPU "
        f"{row['loadgen_cpu_pct']} %: {'ok' if ok else 'FAILED'}",
        flush=True,
    )
    return ok, row


def scaling(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """N Centrals, the fleet split among them; the best aggregate rate sustained."""
    with (
        scratch_postgres(args.postgres, prefix="ev_bench") as url,
        tempfile.TemporaryDirectory(prefix="evbench-") as tmp,
        procs.Children() as children,
    ):
        work = Path(tmp)
        fleet = procs.provision(url, args.cps)
        centrals = [
            procs.start_central(
                children, url, work, name=f"central{i}", extra_args=["--log-level", "WARNING"]
            )
            for i in range(n)
        ]
        pids = [c.proc.pid for c in centrals]
        gens = [
            LoadGenerator(
                Target(*c.addr, api=c.api, token=c.token),
                Provisioned(dict(list(fleet.cps.items())[i::n]), {}),
                MIX,
                workers=1,
            )
            for i, c in enumerate(centrals)
        ]
        with ThreadPoolExecutor(len(gens)) as pool:
            for gen in gens:
                gen.__enter__()
            try:
                connected = list(pool.map(lambda g: g.connect(), gens))
                cps = sum(c["cps"] for c in connected)
                print(f"{n} Central(s): {cps} CPs connected", flush=True)
                best, rate, rows = 0.0, args.start_rate, []
                while rate <= args.max_rate:
                    ok, row = _step(gens, pool, pids, rate, args.step_seconds, args.p99_ms)
                    rows.append(row)
                    if not ok:
                        break
                    best, rate = rate, rate * args.growth
                held: dict[str, Any] = {}
                if best > 0:  # held once, and reported as it went (sustained or not)
                    print(f"holding {best:.0f} msg/s for {args.duration:g} s", flush=True)
                    _, held = _step(gens, pool, pids, best, args.duration, args.p99_ms)
            finally:
                for gen in gens:
                    gen.close()
    return {
        "processes": n,
        "cps_connected": cps,
        "cps_failed": sum(c["cps_failed"] for c in connected),
        "best_step_msg_s": round(best),
        "held_msg_s": round(held.get("rate_msg_s", 0.0)),
        "held_sustained": held.get("sustained", False),
        "ack_p99_ms": held.get("ack_p99_ms"),
        "centrals_cpu_pct": held.get("centrals_cpu_pct"),
        "loadgen_cpu_pct": held.get("loadgen_cpu_pct"),
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 1),  # other work on the machine meanwhile
    }


# ----------------------------------------------------------------- fail-over
def _shown(central: Any) -> list[dict[str, Any]]:
    """The operator's view of the CPs (the public one does not say which Central serves)."""
    return CentralApiClient(central.api, central.token, timeout=10).chargepoints()


async def _all_activated(central: Any, ids: set[str], dead: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            cps = await asyncio.to_thread(_shown, central)
        except CentralApiError:
            cps = []
        good = {
            cp["id"]
            for cp in cps
            if cp["state"] == "ACTIVATED" and cp["central"] not in (None, dead)
        }
        if ids <= good:
            return True
        await asyncio.sleep(0.05)
    return False


def _say_bad(level: Level, text: str) -> None:
    if level is Level.BAD:  # a monitor refused for good: the run is wrong
        print(text, flush=True)


async def _failover(args: argparse.Namespace, url: str, work: Path) -> list[float]:
    fleet = procs.provision(url, args.failover_cps)
    times: list[float] = []
    with procs.Children() as children:
        quiet = ["--log-level", "WARNING", "--heartbeat-interval", "1"]
        centrals = [
            procs.start_central(children, url, work, name=f"central{i}", extra_args=quiet)
            for i in range(3)
        ]
        addrs = Centrals(c.addr for c in centrals)
        monitors = []
        for cp_id, secret in fleet.cps.items():
            path = work / f"{cp_id}.secret"
            path.write_text(secret + "\n")
            path.chmod(0o600)
            session = CentralSession(
                addrs,
                cp_id,
                SecretFile(path, cp_id),
                HealthTracker(),
                lambda _key: None,
                _say_bad,
                auto=True,
                heartbeat_interval=1.0,
            )
            session.authenticate()
            monitors.append(asyncio.create_task(session.run()))
        ids = set(fleet.cps)
        if not await _all_activated(centrals[0], ids, "", time.monotonic() + 120):
            raise RuntimeError("the fleet never came up")
        for kill in range(args.kills):
            cps = await asyncio.to_thread(_shown, centrals[0])
            served = [cp["central"] for cp in cps]
            victim_i = max(range(3), key=lambda i: served.count(str(centrals[i].addr)))
            victim = centrals[victim_i]
            survivor = centrals[(victim_i + 1) % 3]
            moving = served.count(str(victim.addr))
            start = time.monotonic()
            victim.proc.kill()
            done = await _all_activated(survivor, ids, str(victim.addr), start + 120)
            took = time.monotonic() - start
            print(
                f"kill {kill + 1}: {victim.addr} served {moving} CPs; all ACTIVATED again "
                f"after {took:.2f} s" + ("" if done else " (NOT within 120 s)"),
                flush=True,
            )
            times.append(took if done else float("inf"))
            children.stop(victim.proc)
            centrals[victim_i] = procs.start_central(
                children,
                url,
                work,
                name=f"central{victim_i}-{kill}",
                extra_args=quiet,
                ports=(victim.addr.port, int(victim.api.rsplit(":", 1)[1].split("/")[0])),
            )
        for task in monitors:
            task.cancel()
        await asyncio.gather(*monitors, return_exceptions=True)
    return times


def failover(args: argparse.Namespace) -> dict[str, Any]:
    with (
        scratch_postgres(args.postgres, prefix="ev_bench") as url,
        tempfile.TemporaryDirectory(prefix="evbench-") as tmp,
    ):
        times = asyncio.run(_failover(args, url, Path(tmp)))
    ordered = sorted(times)
    return {
        "kills": len(times),
        "cps": args.failover_cps,
        "p50_s": round(statistics.median(ordered), 2),
        "p99_s": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 2),
        "max_s": round(ordered[-1], 2),
        "times_s": [round(t, 2) for t in times],
        "load_avg_1m": round(os.getloadavg()[0], 1),
    }


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--postgres",
        default=os.environ.get("EV_TEST_POSTGRES_URL", DEFAULT_PG),
        help="a PostgreSQL server where scratch databases are made (default: the local one)",
    )
    parser.add_argument(
        "--processes", default="1,2,4", help="Central counts, comma-separated ('' to skip)"
    )
    cli.number(parser, "--cps", int, 2000, "fleet size")
    cli.step_arguments(parser, start=500, growth=1.4, step=6.0, hold=20.0)
    parser.add_argument(
        "--p99-ms",
        type=float,
        default=P99_LIMIT_MS,
        help="p99 ACK latency a step must stay under (default 100; raise it on a machine "
        "shared with other work, and say so)",
    )
    cli.number(parser, "--kills", int, 10, "fail-overs timed, 0 for none")
    cli.number(parser, "--failover-cps", int, 200, "monitors in the fail-over runs")


def _run(args: argparse.Namespace) -> int:
    procs.raise_nofile()
    sizes = [int(n) for n in args.processes.split(",") if n.strip()]
    if sizes:
        rows = [scaling(n, args) for n in sizes]
        report("cluster_scaling", rows, meta={"cps": args.cps, "cores": os.cpu_count()})
    if args.kills:
        report("cluster_failover", [failover(args)])
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main("cluster", __doc__, argv, _arguments, _run)


if __name__ == "__main__":
    raise SystemExit(main())
