"""``ev-driver``: a driver's command line to Central.

ev-driver --id D --central HOST:PORT [--secret-file F] [--no-tty] COMMAND
    request CP [--kwh N]      ask for a charge, follow it live, print the ticket
    run FILE [--pause S]      a file of services, one after the other, then a summary
    list                      the charge points free now, with location and price
    history                   this driver's past tickets
    status [--follow]         missed tickets and a charge still running (follow it)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from common.config import (
    ServiceParser,
    argv_or_default,
    parse_centrals,
    parse_positive_float,
    read_secret,
    run_main,
)
from common.errors import ConfigError
from common.protocol.handshake import valid_principal_id
from driver.app import DriverApp, Timing, interactive
from driver.link import CentralLink
from driver.screen import PlainScreen, RichScreen, Screen
from driver.servicefile import ServiceFile, parse_service_file

__all__ = ["build_parser", "main"]

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


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


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
        parse=_non_negative_float,
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
        type=_arg(_non_negative_float),
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
    secret = read_secret("EV_DRIVER_SECRET", env)
    assert secret is not None
    return secret


def _service_file(path: Path) -> ServiceFile:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the service file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "the service file is not UTF-8 text") from None
    return parse_service_file(text)


def _body(argv: list[str], env: Mapping[str, str]) -> int:
    args = build_parser(env).parse_args(argv)
    if not args.id:
        raise ConfigError("--id", "not set (use --id or EV_DRIVER_ID)")
    if not valid_principal_id(args.id):
        raise ConfigError("--id", f"{args.id!r}: 1-32 letters, digits, '-' or '_'")
    if args.central is None:
        raise ConfigError("--central", "not set (use --central HOST:PORT or EV_CENTRAL_ADDR)")
    secret = _secret(args, env)
    services = _service_file(args.file) if args.command == "run" else None

    tty = not args.no_tty and sys.stdout.isatty()
    screen: Screen = RichScreen() if tty else PlainScreen()
    link = CentralLink(args.central, args.id, secret, retry_for=args.retry_for, notify=screen.warn)
    hint = shlex.join([PROG, "--id", args.id, "--central", str(args.central), "status", "--follow"])
    app = DriverApp(
        link,
        screen,
        Timing(plug_wait=args.plug_wait),
        follow_hint=hint,
        confirm=_confirm if tty and interactive() else None,
    )
    command: Callable[[], Awaitable[int]]
    match args.command:
        case "request":
            command = lambda: app.request(args.cp_id, args.kwh)  # noqa: E731
        case "run":
            assert services is not None
            command = lambda: app.run(services, args.pause, str(args.file))  # noqa: E731
        case "list":
            command = app.list_cps
        case "history":
            command = app.history
        case _:
            command = lambda: app.status(args.follow)  # noqa: E731
    return asyncio.run(app.execute(command))


def _confirm(question: str) -> bool:
    from rich.prompt import Confirm

    return Confirm.ask(question, default=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    environ = os.environ if env is None else env
    return run_main(PROG, lambda: _body(argv_or_default(argv), environ))


if __name__ == "__main__":
    raise SystemExit(main())
