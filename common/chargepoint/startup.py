"""The start of a charge-point process, the same for the engine and the monitor.

Settings from flags and environment, the log, the site pairing key, then the program's
own ``run`` on an event loop (a bad setting is one line on stderr and exit code 2);
there, :func:`start_console` takes commands from stdin and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from common.chargepoint.menu import Menu
from common.chargepoint.pairing import site_pairing_key
from common.chargepoint.terminal import KeyReader, Screen
from common.config import argv_or_default, run_main
from common.logs import setup_logging

__all__ = ["SiteSettings", "run_site_process", "start_console"]


class SiteSettings(Protocol):
    """What the start needs of a program's settings."""

    @property
    def log_level(self) -> str: ...

    @property
    def pairing_key_file(self) -> Path: ...


S = TypeVar("S", bound=SiteSettings)


def run_site_process(
    prog: str,
    service: str,
    parse: Callable[[Sequence[str], Mapping[str, str]], S],
    run: Callable[[S, bytes, Screen], Coroutine[Any, Any, int]],
    argv: Sequence[str] | None,
) -> int:
    """Start ``prog`` and return its exit code.

    Args:
        prog: the command's name, for error lines.
        service: the name its log lines carry.
        parse: its ``parse_settings(argv, env)``.
        run: its ``run(settings, pairing_key, screen)``.
        argv: the arguments (None: the command line's).
    """

    def body() -> int:
        settings = parse(argv_or_default(argv), os.environ)
        setup_logging(service, settings.log_level)
        key = site_pairing_key(settings.pairing_key_file)
        return asyncio.run(run(settings, key, Screen()))

    return run_main(prog, body)


def start_console(
    menu: Menu, on_command: Callable[[str], object], stop: Callable[[], object]
) -> KeyReader:
    """Call ``stop`` on SIGTERM or SIGINT, and ``on_command`` on the running loop with
    each of ``menu``'s keys or lines read from stdin; :meth:`KeyReader.close` at the end."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    reader = KeyReader(lambda line: loop.call_soon_threadsafe(on_command, line), menu.immediate)
    reader.start()
    return reader
