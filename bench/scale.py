"""Scale: connect and authenticate N charge points, then hold the target mix.

    python -m bench.scale --cps 1000,5000,10000 --duration 30

For each N, on a fresh Central process and database: the time to connect and authenticate
N monitors and N engines (plus a driver per supplying CP), then ``--duration`` seconds of
the mix (heart-beats every ``--heartbeat-interval`` s, 5 by default as Central's, or 1;
``--supplying`` charging with telemetry 1 Hz, drivers asking again after each ticket,
operator commands through API_Central). Reported per N: connect time, Central's resident
memory idle and loaded and per CP, its CPU, the ACK / authorisation / operator
latencies, every error, and the load generator's own CPU. With ``--storm``, Central is
then killed and restarted under the fleet, and the time until every CP is ACTIVATED
again and Central's CPU per login are reported too.
Targets (10,000 CPs): nothing NACKed or lost, p99 ACK < 100 ms, Central < 1 GiB; storm:
all ACTIVATED within 60 s, < 1 ms of Central's CPU per login.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import cli, procs
from bench.loadgen.mix import mix_arguments, mix_of
from bench.loadgen.run import RunOptions, run_against_central
from bench.report import report
from central.server import FD_RESERVE

__all__ = ["main"]

TARGET_P99_MS = 100.0
TARGET_RSS_MIB = 1024.0
TARGET_STORM_S = 60.0  # every CP ACTIVATED again after Central restarts under them
TARGET_MS_PER_LOGIN = 1.0  # Central's CPU per login, besides the client's scrypt


def descriptors_needed(cps: int, supplying: float) -> int:
    """Open files Central needs for ``cps`` CPs at the mix (see central.server.FD_RESERVE)."""
    return 2 * cps + round(cps * supplying) + FD_RESERVE


def _verdict(row: dict[str, object]) -> str:
    problems = []
    if float(str(row["ack_p99_ms"])) >= TARGET_P99_MS:
        problems.append("p99")
    if float(str(row["central_rss_mib"])) >= TARGET_RSS_MIB:
        problems.append("memory")
    lost = ("nacked", "rejected", "dropped", "connect_failed", "unanswered_at_end")
    if any(int(str(row[key])) for key in lost):
        problems.append("errors")
    if "storm_s" in row:
        activated = row["storm_activated_s"]
        if activated is None or float(str(activated)) > TARGET_STORM_S or row["storm_failed"]:
            problems.append("storm")
        if float(str(row["storm_central_ms_per_login"])) >= TARGET_MS_PER_LOGIN:
            problems.append("login cost")
    return "met" if not problems else "missed: " + ",".join(problems)


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cps",
        default="1000,5000,10000",
        help="comma-separated fleet sizes, one fresh Central each (default 1000,5000,10000)",
    )
    cli.number(parser, "--duration", float, 60.0, "seconds of the mix measured")
    parser.add_argument(
        "--storm",
        action="store_true",
        help="then SIGKILL Central, start it again on the same database and time the whole "
        "fleet logging in again (target: all ACTIVATED within 60 s, < 1 ms of Central's CPU "
        "per login)",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        help="py-spy Central while measuring; collapsed stacks to DIR/central-N.txt",
    )
    mix_arguments(parser)


def _run(args: argparse.Namespace) -> int:
    sizes = [int(n) for n in args.cps.split(",") if n.strip()]
    rows = []
    limit = procs.raise_nofile()  # what Central, a child of ours, will be allowed
    for n in sizes:
        print(f"--- {n} charge points", flush=True)
        needed = descriptors_needed(n, args.supplying)
        if needed > limit:
            print(
                f"not run: {n} CPs need about {needed} open files in Central (a socket per "
                f"monitor, engine and driver, plus {FD_RESERVE} it keeps for itself); this "
                f"machine allows {limit} per process (raise the hard limit: ulimit -Hn, "
                "LimitNOFILE=). Run a smaller --cps.",
                flush=True,
            )
            rows.append({"cps": n, "target": f"not run: needs {needed} files, limit {limit}"})
            continue
        profile = args.profile_dir / f"central-{n}.txt" if args.profile_dir else None
        opts = RunOptions(
            cps=n,
            duration=args.duration,
            warmup=args.warmup,
            workers=args.workers,
            mix=mix_of(args),
            profile=profile,
            storm=args.storm,
        )
        row = run_against_central(opts, lambda line: print(line, flush=True))
        row["target"] = _verdict(row)
        rows.append(row)
        if profile is not None and profile.exists():
            report(f"scale_profile_{n}", procs.top_functions(profile))
    name = "scale" if args.heartbeat_interval == 5 else f"scale_hb{args.heartbeat_interval:g}s"
    report(name, rows, meta={"mix": vars(mix_of(args)), "duration_s": args.duration})
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main("scale", __doc__, argv, _arguments, _run)


if __name__ == "__main__":
    raise SystemExit(main())
