"""Load generator: N charge points (monitor + engine each) and D drivers against Central.

    python -m bench.loadgen --cps 2000 --duration 30

Every connection is really authenticated (the project's ``ClientHandshake``) and really
encrypted (its ``Connection``: framing, Fernet, sequence numbers), from a few worker
processes (``--workers``), each using its own source address 127.0.0.x. The mix: every
monitor heart-beats (1 Hz); a share of CPs (``--supplying``) charges a driver's vehicle
and sends telemetry (1 Hz), each session ending after ``--session-seconds`` and its driver
asking again; an operator stops and resumes idle CPs through API_Central
(``--operator-rate``). Recorded, with histograms: send → ACK for every frame, driver
request → authorisation, operator command → the CP's monitor told; and every error:
NACKs, frames Central sent that we rejected, dropped connections, denials, timeouts.

With ``bare`` targets (``bench.bare``) there is no handshake: every connection is secured
with a shared key, and only heart-beats (or a fixed rate, ``rate=``) are sent.

A worker drives its sockets with ``asyncio.Protocol`` callbacks rather than
``common.client`` (a StreamReader and a task per connection): the same sans-IO protocol
objects, about half the CPU per message, which the machine's cores are better spent on.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import cli, procs
from bench.loadgen.mix import mix_arguments, mix_of
from bench.loadgen.run import RunOptions, run_against_central
from bench.report import report

__all__ = ["main"]


def _arguments(parser: argparse.ArgumentParser) -> None:
    cli.number(parser, "--cps", int, 1000, "charge points")
    cli.number(parser, "--duration", float, 30.0, "seconds measured")
    parser.add_argument(
        "--profile",
        type=Path,
        help="also sample Central with py-spy while measuring; collapsed stacks to this file",
    )
    mix_arguments(parser)


def _run(args: argparse.Namespace) -> int:
    opts = RunOptions(
        cps=args.cps,
        duration=args.duration,
        warmup=args.warmup,
        workers=args.workers,
        mix=mix_of(args),
        profile=args.profile,
    )
    row = run_against_central(opts, lambda line: print(line, flush=True))
    report("loadgen", [row], meta={"mix": vars(opts.mix)})
    if args.profile is not None and args.profile.exists():
        report("loadgen_profile", procs.top_functions(args.profile))
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main("loadgen", __doc__, argv, _arguments, _run)


if __name__ == "__main__":
    raise SystemExit(main())
