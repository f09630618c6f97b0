"""What a load run is told: where the load goes, what load, and each worker's share.

Also the load-mix flags every benchmark driving Central shares (``mix_arguments``,
``mix_of``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace

from bench import cli

__all__ = ["Mix", "Plan", "Target", "mix_arguments", "mix_of", "workers_argument"]


@dataclass(frozen=True)
class Target:
    """Where the load goes: Central (handshake, API) or a bare server (shared key)."""

    host: str
    port: int
    bare_key: bytes | None = None
    api: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Mix:
    heartbeat_hz: float = 0.2  # Central's default interval, 5 s
    engines: bool = True  # connect an engine per CP (not needed for pure heart-beat load)
    supplying: float = 0.10  # share of CPs charging a driver's vehicle
    telemetry_hz: float = 1.0
    session_seconds: float = 60.0  # a charge ends (ticket) after this; its driver asks again
    operator_rate: float = 0.5  # operator commands per second, all workers together
    concurrency: int = 100  # connection attempts in flight per worker


@dataclass(frozen=True)
class Plan:
    """One worker's share of the fleet: its CPs and its drivers."""

    index: int
    cps: list[tuple[str, str]]
    drivers: list[tuple[str, str, str]]  # driver id, secret, the CP it charges at


def mix_arguments(parser: argparse.ArgumentParser) -> None:
    """The load-mix flags every benchmark driving Central shares."""
    cli.number(parser, "--supplying", float, Mix.supplying, "share of CPs charging")
    cli.number(
        parser,
        "--session-seconds",
        float,
        Mix.session_seconds,
        "a charge ends after this, then its driver asks again",
    )
    cli.number(
        parser,
        "--operator-rate",
        float,
        Mix.operator_rate,
        "operator stop/resume commands per second through API_Central",
    )
    cli.number(
        parser,
        "--heartbeat-interval",
        float,
        1 / Mix.heartbeat_hz,
        "seconds between each monitor's heart-beats (Central's default)",
    )
    workers_argument(parser)
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of load before measuring (default 5)"
    )


def workers_argument(parser: argparse.ArgumentParser) -> None:
    """``--workers``: how many processes the load generator runs."""
    parser.add_argument(
        "--workers", type=int, default=2, help="load-generator processes (default 2)"
    )


def mix_of(args: argparse.Namespace) -> Mix:
    cli.positive(args, "heartbeat_interval")
    return replace(
        Mix(),
        heartbeat_hz=1 / args.heartbeat_interval,
        supplying=args.supplying,
        session_seconds=args.session_seconds,
        operator_rate=args.operator_rate,
    )
