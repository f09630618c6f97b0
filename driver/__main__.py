"""``ev-driver``: a driver's command line to Central.

ev-driver --id D --central HOST:PORT [--secret-file F] [--no-tty] COMMAND
    request CP [--kwh N]      ask for a charge, follow it live, print the ticket
    run FILE [--pause S]      a file of services, one after the other, then a summary
    list                      the charge points free now, with location and price
    history                   this driver's past tickets
    status [--follow]         missed tickets and a charge still running (follow it)

Settings are parsed and checked in :mod:`driver.settings`; this module only wires.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence

from common.config import argv_or_default, run_main
from driver.app import DriverApp, Timing, interactive
from driver.link import CentralLink
from driver.screen import PlainScreen, RichScreen, Screen
from driver.settings import (
    PROG,
    History,
    ListCps,
    Request,
    RunFile,
    Status,
    parse_settings,
)

__all__ = ["main"]


def _body(argv: list[str], env: Mapping[str, str]) -> int:
    s = parse_settings(argv, env)
    tty = s.tty and sys.stdout.isatty()
    screen: Screen = RichScreen() if tty else PlainScreen()
    link = CentralLink(s.central, s.driver_id, s.secret, retry_for=s.retry_for, notify=screen.warn)
    follow = [PROG, "--id", s.driver_id, "--central", str(s.central), "status", "--follow"]
    app = DriverApp(
        link,
        screen,
        Timing(plug_wait=s.plug_wait),
        follow_hint=shlex.join(follow),
        confirm=_confirm if tty and interactive() else None,
    )
    command: Callable[[], Awaitable[int]]
    match s.command:
        case Request(cp_id, kwh):
            command = lambda: app.request(cp_id, kwh)  # noqa: E731
        case RunFile(path, services, pause):
            command = lambda: app.run(services, pause, str(path))  # noqa: E731
        case ListCps():
            command = app.list_cps
        case History():
            command = app.history
        case Status(follow_it):
            command = lambda: app.status(follow_it)  # noqa: E731
    return asyncio.run(app.execute(command))


def _confirm(question: str) -> bool:
    from rich.prompt import Confirm

    return Confirm.ask(question, default=True)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    environ = os.environ if env is None else env
    return run_main(PROG, lambda: _body(argv_or_default(argv), environ))


if __name__ == "__main__":
    raise SystemExit(main())
