"""``evcharging demo`` settings: flags, ports, tokens, the data directory."""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from common.config import ServiceParser, make_private_dir, parse_positive_float, read_secret
from common.errors import ConfigError
from common.tcp import port_in_use

__all__ = [
    "DEFAULT_PORTS",
    "DemoSettings",
    "Ports",
    "add_demo_options",
    "resolve_settings",
]

HOST = "127.0.0.1"

# The ports of a single-machine install (README, DESIGN.md), by service.
DEFAULT_PORTS: dict[str, int] = {
    "web": 8000,
    "api": 8001,
    "central": 7000,
    "registry": 8443,
    "broker": 9092,
}
_LABELS = {
    "web": "web dashboard",
    "api": "API_Central",
    "central": "Central",
    "registry": "Registry",
    "broker": "broker",
}


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("must be 0-65535 (0 = any free port)")
    return value


def _count(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 50:
        raise ValueError("must be 0-50")
    return value


def add_demo_options(parser: ServiceParser) -> None:
    """Declare the ``demo`` flags of DESIGN.md on ``parser``."""
    parser.option(
        "--cps", env=None, default=4, parse=_count, metavar="N", help="charge points to run"
    )
    parser.option(
        "--ocpp-cps",
        env=None,
        default=1,
        parse=_count,
        metavar="N",
        help="OCPP 1.6J chargers (ev-ocpp-sim) besides them, on Central's OCPP listener",
    )
    parser.option(
        "--drivers",
        env=None,
        default=2,
        parse=_count,
        metavar="M",
        help="automated drivers, each running its service file over and over",
    )
    parser.option(
        "--duration",
        env=None,
        default=None,
        parse=parse_positive_float,
        metavar="S",
        help="run unattended for S seconds from the start, print a summary and exit 0",
    )
    parser.option(
        "--data-dir",
        env=None,
        default=None,
        parse=Path,
        metavar="DIR",
        help="database, logs, TLS files and secrets of this run (unset: a new temp directory)",
    )
    for name, port in DEFAULT_PORTS.items():
        parser.option(
            f"--{name}-port",
            env=None,
            default=None,
            parse=_port,
            metavar="PORT",
            help=f"{_LABELS[name]} port (0: any free port; unset: {port}, "
            "or a free one if that is taken)",
        )


@dataclass(frozen=True)
class Ports:
    """The port asked of each service (0: the service picks a free one and prints it)."""

    web: int
    api: int
    central: int
    registry: int
    broker: int


@dataclass(frozen=True)
class DemoSettings:
    cps: int
    drivers: int
    duration: float | None
    data_dir: Path
    data_dir_is_temp: bool
    ports: Ports
    operator_token: str
    provisioning_token: str
    notes: tuple[str, ...]  # said once at start (a default port that was taken...)
    host: str = HOST
    ocpp_cps: int = 0
    # Between Central and the weather office only, so never asked for: fresh each run.
    weather_token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)


def resolve_settings(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> DemoSettings:
    """Turn parsed flags into settings: check ports, make tokens and the data directory.

    Raises:
        ConfigError: a port given explicitly is taken, or the data directory is unusable.
    """
    env = os.environ if env is None else env
    notes: list[str] = []
    chosen: dict[str, int] = {}
    for name, default in DEFAULT_PORTS.items():
        asked: int | None = getattr(args, f"{name}_port")
        if asked is None:
            if port_in_use(HOST, default):
                notes.append(
                    f"port {default} ({_LABELS[name]}) is taken; using a free one instead "
                    f"(--{name}-port to choose)"
                )
                chosen[name] = 0
            else:
                chosen[name] = default
        else:
            if asked and port_in_use(HOST, asked):
                raise ConfigError(f"--{name}-port", f"port {asked} is already in use")
            chosen[name] = asked
    taken = [p for p in chosen.values() if p]
    if len(taken) != len(set(taken)):
        raise ConfigError("ports", "two services were given the same port")

    operator = read_secret("EV_OPERATOR_TOKEN", env)
    provisioning = read_secret("EV_PROVISIONING_TOKEN", env)
    data_dir, is_temp = _data_dir(args.data_dir)
    return DemoSettings(
        cps=args.cps,
        drivers=args.drivers,
        duration=args.duration,
        data_dir=data_dir,
        data_dir_is_temp=is_temp,
        ports=Ports(**chosen),
        operator_token=operator or secrets.token_urlsafe(24),
        provisioning_token=provisioning or secrets.token_urlsafe(24),
        notes=tuple(notes),
        ocpp_cps=getattr(args, "ocpp_cps", 0),
    )


def _data_dir(given: Path | None) -> tuple[Path, bool]:
    if given is None:
        return Path(tempfile.mkdtemp(prefix="evcharging-demo-")).resolve(), True
    path = given.expanduser().resolve()
    try:
        make_private_dir(path)  # secrets live there
    except OSError as exc:
        raise ConfigError("--data-dir", f"cannot create {path}: {exc.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ConfigError("--data-dir", f"{path} is not writable")
    return path, False
