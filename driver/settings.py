"""``ev-driver`` settings: flags, ``EV_*`` environment variables, the secret, the command.

:func:`parse_settings` validates everything, the service file of ``run`` included,
before the driver connects, so a bad setting is one clear line (exit code 2). No I/O
but reading.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import (
    Centrals,
    ServiceParser,
    parse_centrals,
    parse_non_negative_float,
    parse_positive_float,
    require_secret,
)
from common.errors import ConfigError
from common.protocol.handshake import valid_principal_id
from driver.servicefile import ServiceFile, parse_service_file

__all__ = [
    "PROG",
    "Command",
    "DriverSettings",
    "History",
    "ListCps",
    "Request",
    "RunFile",
    "Status",
    "build_parser",
    "parse_settings",
]

PROG = "ev-driver"
DESCRIPTION = """EVCharging driver: ask Central for charges and follow them live.

  ev-driver --id D1 --central 127.0.0.1:7000 list
  ev-driver --id D1 --central 127.0.0.1:7000 request CP1 --kwh 10
  ev-driver --id D1 --central 127.0.0.1:7000 run services.txt --pause 4
  ev-driver --id D1 --central 127.0.0.1:7000 status --follow

The secret comes from --secret-file, EV_DRIVER_SECRET or EV_DRIVER_SECRET_FILE.
Exit codes: 0 done (a ticket, a file run); 1 denied or ended without a ticket;
2 usage or configuration error; 3 Central unreachable; 4 authentication refused;
5 gave up waiting (--plug-wait, no answer)."""


@dataclass(frozen=True)
class Request:
    """``request CP [--kwh N]``."""

    cp_id: str
    kwh: float | None


@dataclass(frozen=True)
class RunFile:
    """``run FILE [--pause S]``, the file read and parsed."""

    path: Path
    services: ServiceFile
    pause: float


@dataclass(frozen=True)
class ListCps:
    """``list``."""


@dataclass(frozen=True)
class History:
    """``history``."""


@dataclass(frozen=True)
class Status:
    """``status [--follow]``."""

    follow: bool


Command = Request | RunFile | ListCps | History | Status


@dataclass(frozen=True, kw_only=True)
class DriverSettings:
    """Everything ``ev-driver`` needs. The secret is kept out of ``repr``."""

    driver_id: str
    central: Centrals
    secret: str = field(repr=False)
    tty: bool  # False with --no-tty: plain lines even on a terminal
    retry_for: float
    plug_wait: float
    command: Command


def _arg(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse ``type`` whose error message says what is wrong, not a function name."""

    def wrapped(text: str) -> Any:
        try:
            return parse(text)
        except (ValueError, TypeError) as exc:
            raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None

    return wrapped


def build_parser(env: Mapping[str, str] | None = None) -> ServiceParser:
    parser = ServiceParser(PROG, DESCRIPTION, env=env)
    parser.option("--id", env="EV_DRIVER_ID", default=None, help="this driver's id")
    parser.option(
        "--central",
        env="EV_CENTRAL_ADDR",
        default=None,
        parse=parse_centrals,
        metavar="HOST:PORT[,HOST:PORT...]",
        help="Central's address; with several Centrals, any or all of them",
    )
    parser.add_argument(
        "--secret-file",
        type=Path,
        metavar="FILE",
        help="file holding this driver's secret (else EV_DRIVER_SECRET[_FILE])",
    )
    parser.add_argument(
        "--no-tty", action="store_true", help="plain timestamped lines, no live display"
    )
    parser.option(
        "--retry-for",
        env="EV_DRIVER_RETRY_FOR",
        default=30.0,
        parse=parse_non_negative_float,
        metavar="S",
        help="seconds to keep retrying while Central is unreachable (0: once)",
    )
    parser.option(
        "--plug-wait",
        env="EV_DRIVER_PLUG_WAIT",
        default=600.0,
        parse=parse_positive_float,
        metavar="S",
        help="cap on the wait for the vehicle after authorisation"
        " (Central's plug timeout normally ends it first)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    request = commands.add_parser("request", help="ask for a charge at a CP and follow it")
    request.add_argument("cp_id", metavar="CP", help="charge point id")
    request.add_argument(
        "--kwh", type=_arg(parse_positive_float), metavar="N", help="target energy in kWh"
    )
    run = commands.add_parser("run", help="run a file of services, one after the other")
    run.add_argument("file", type=Path, metavar="FILE", help="one 'CP [KWH]' per line")
    run.add_argument(
        "--pause",
        type=_arg(parse_non_negative_float),
        default=4.0,
        metavar="S",
        help="seconds between services; default 4",
    )
    commands.add_parser("list", help="charge points free now, with location and price")
    commands.add_parser("history", help="this driver's past tickets")
    status = commands.add_parser("status", help="missed tickets and a charge in progress")
    status.add_argument(
        "--follow", action="store_true", help="follow a charge in progress to its ticket"
    )
    return parser


def _secret(args: argparse.Namespace, env: Mapping[str, str]) -> str:
    if args.secret_file is not None:
        try:
            secret = args.secret_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                "--secret-file", f"cannot read {args.secret_file}: {exc.strerror}"
            ) from None
        if not secret:
            raise ConfigError("--secret-file", f"{args.secret_file} is empty")
        return secret
    return require_secret("EV_DRIVER_SECRET", env)


def _service_file(path: Path) -> ServiceFile:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the service file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "the service file is not UTF-8 text") from None
    return parse_service_file(text)


def _command(args: argparse.Namespace) -> Command:
    match args.command:
        case "request":
            return Request(args.cp_id, args.kwh)
        case "run":
            return RunFile(args.file, _service_file(args.file), args.pause)
        case "list":
            return ListCps()
        case "history":
            return History()
        case _:
            return Status(args.follow)


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> DriverSettings:
    """Parse flags, environment, the secret and the command into :class:`DriverSettings`.

    Raises:
        ConfigError: anything missing or malformed, in one line.
    """
    env = os.environ if env is None else env
    args = build_parser(env).parse_args(list(argv))
    if not args.id:
        raise ConfigError("--id", "not set (use --id or EV_DRIVER_ID)")
    if not valid_principal_id(args.id):
        raise ConfigError("--id", f"{args.id!r}: 1-32 letters, digits, '-' or '_'")
    if args.central is None:
        raise ConfigError("--central", "not set (use --central HOST:PORT or EV_CENTRAL_ADDR)")
    secret = _secret(args, env)
    return DriverSettings(
        driver_id=args.id,
        central=args.central,
        secret=secret,
        tty=not args.no_tty,
        retry_for=args.retry_for,
        plug_wait=args.plug_wait,
        command=_command(args),
    )
