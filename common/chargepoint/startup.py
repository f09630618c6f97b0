"""The start of a charge-point process, the same for the engine and the monitor.

Settings from flags and environment, the log, the site pairing key, then the program's
own ``run`` on an event loop; a bad setting is one line on stderr and exit code 2.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from common.chargepoint.pairing import site_pairing_key
from common.chargepoint.terminal import Screen
from common.config import argv_or_default, run_main
from common.logs import setup_logging

__all__ = ["SiteSettings", "run_site_process"]


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
