"""``ev-cp-engine``: the charger (see ``ev-cp-engine --help``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

from common.config import argv_or_default, run_main
from common.logs import setup_logging
from cp_engine.app import run_engine
from cp_engine.pairing import site_pairing_key
from cp_engine.settings import PROG, parse_settings
from cp_engine.terminal import Screen

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, lambda: _run(argv_or_default(argv)))


def _run(argv: list[str]) -> int:
    settings = parse_settings(argv, os.environ)
    setup_logging("cp_engine", settings.log_level)
    key = site_pairing_key(settings.pairing_key_file)
    return asyncio.run(run_engine(settings, key, Screen()))


if __name__ == "__main__":
    raise SystemExit(main())
