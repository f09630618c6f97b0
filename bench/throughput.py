"""Throughput: the highest heart-beat rate sustained with p99 ACK < 100 ms, and the bound.

    python -m bench.throughput --connections 1000 --duration 60

Two servers, measured in the same run by the same load generator: first the bare bound
(``bench.bare``: de-frame, Fernet-decrypt, ACK; nothing else), then Central. For each,
the rate steps up (x ``--growth`` from ``--start-rate``, ``--step-seconds`` each) until a
step fails: p99 ACK latency >= 100 ms, any NACK / rejected / dropped frame, or fewer than
97 % of the offered messages answered. The best passing rate is then held for
``--duration`` seconds (backing off 10 % if it fails). Reported: both rates, Central's as a
share of the bound, and the CPU of each server and of the load generator.
"""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet

from bench import cli, procs
from bench.loadgen.coordinator import LoadGenerator
from bench.loadgen.metrics import Window
from bench.loadgen.mix import Mix, Target, workers_argument
from bench.report import report

__all__ = ["main"]

P99_LIMIT_MS = 100.0
ANSWERED = 0.97
TARGET_SHARE = 0.85  # Central's sustained rate as a share of the bare bound
MIX = Mix(engines=False, supplying=0.0, operator_rate=0.0)


@dataclass(frozen=True)
class Search:
    start: float
    growth: float
    ceiling: float
    step_seconds: float
    duration: float


def _passes(window: Window, rate: float) -> bool:
    answered = window.counters["acked"] / window.seconds >= ANSWERED * rate
    return window.errors == 0 and window.ack.quantile(0.99) * 1000 < P99_LIMIT_MS and answered


def _step(gen: LoadGenerator, pid: int, rate: float, seconds: float) -> tuple[bool, dict[str, Any]]:
    gen.measure(2.0, rate)  # settle at the new rate
    before = procs.proc_stats(pid)
    window = gen.measure(seconds, rate)
    after = procs.proc_stats(pid)
    ok = _passes(window, rate)
    row = {
        "offered_msg_s": round(rate),
        "seconds": round(window.seconds, 1),
        **window.summary(),
        "server_cpu_pct": round(100 * (after.cpu_seconds - before.cpu_seconds) / window.seconds),
        "sustained": ok,
    }
    verdict = "ok" if ok else "FAILED"
    print(
        f"  {rate:8.0f} msg/s offered: {row['rate_msg_s']:8.0f} answered, "
        f"p99 {row['ack_p99_ms']} ms, server CPU {row['server_cpu_pct']} %, "
        f"load generator CPU {row['loadgen_cpu_pct']} %: {verdict}",
        flush=True,
    )
    return ok, row


def _search(gen: LoadGenerator, pid: int, name: str, search: Search) -> list[dict[str, Any]]:
    """Step the rate up until it fails, then hold the best for the full duration."""
    rows: list[dict[str, Any]] = []
    best, rate = 0.0, search.start
    print(f"{name}: stepping the rate up ({search.step_seconds:g} s per step)", flush=True)
    while rate <= search.ceiling:
        ok, row = _step(gen, pid, rate, search.step_seconds)
        rows.append({"server": name, "phase": "step", **row})
        if not ok:
            break
        best, rate = rate, rate * search.growth
    rate = best
    for _ in range(3):
        if rate <= 0:
            break
        print(f"{name}: holding {rate:.0f} msg/s for {search.duration:g} s", flush=True)
        ok, row = _step(gen, pid, rate, search.duration)
        rows.append({"server": name, "phase": "hold", **row})
        if ok:
            break
        rate *= 0.9
    return rows


def _sustained(rows: list[dict[str, Any]]) -> float:
    held = [r["rate_msg_s"] for r in rows if r["phase"] == "hold" and r["sustained"]]
    return float(max(held, default=0.0))


def _has_uvloop() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def _arguments(parser: argparse.ArgumentParser) -> None:
    cli.number(parser, "--connections", int, 1000, "monitor connections carrying the heart-beats")
    cli.step_arguments(parser, start=2000, growth=1.3, step=8.0, hold=60.0)
    workers_argument(parser)
    parser.add_argument(
        "--central-args",
        default="",
        help="extra flags for Central, space-separated (e.g. '--log-level WARNING')",
    )


def _run(args: argparse.Namespace) -> int:
    search = Search(args.start_rate, args.growth, args.max_rate, args.step_seconds, args.duration)
    procs.raise_nofile()
    rows: list[dict[str, Any]] = []
    with cli.work_directory(None, "evbench-") as work, procs.Children() as children:
        url = f"sqlite:///{work}/ev.db"
        print(f"provisioning {args.connections} charge points ...", flush=True)
        fleet = procs.provision(url, args.connections)

        key = Fernet.generate_key()
        # The bound runs on the loop Central runs on: uvloop when installed (the speed extra).
        bare, addr = procs.start_bare(children, key, work, uvloop=_has_uvloop())
        with LoadGenerator(Target(*addr, bare_key=key), fleet, MIX, workers=args.workers) as gen:
            gen.connect()
            rows += _search(gen, bare.pid, "bare", search)
        children.stop(bare)

        central_args = ["--heartbeat-timeout", "30", *args.central_args.split()]
        central = procs.start_central(children, url, work, extra_args=central_args)
        target = Target(*central.addr, api=central.api, token=central.token)
        with LoadGenerator(target, fleet, MIX, workers=args.workers) as gen:
            print(f"connecting {args.connections} monitors to Central ...", flush=True)
            gen.connect()
            rows += _search(gen, central.proc.pid, "central", search)
    report("throughput_steps", rows)
    bound, central_rate = (
        _sustained([r for r in rows if r["server"] == "bare"]),
        _sustained([r for r in rows if r["server"] == "central"]),
    )
    ratio = central_rate / bound if bound else 0.0
    summary = {
        "bare_bound_msg_s": round(bound),
        "central_sustained_msg_s": round(central_rate),
        "central_share_of_bound_pct": round(100 * ratio, 1),
        "target_pct": round(100 * TARGET_SHARE),
        "target": "met"
        if ratio >= TARGET_SHARE
        else f"missed by {round(100 * (TARGET_SHARE - ratio), 1)} points",
    }
    report("throughput", [summary], meta={"connections": args.connections, **vars(search)})
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main("throughput", __doc__, argv, _arguments, _run)


if __name__ == "__main__":
    raise SystemExit(main())
