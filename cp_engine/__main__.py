"""``ev-cp-engine``: the charger (see ``ev-cp-engine --help``)."""

from __future__ import annotations

from collections.abc import Sequence

from common.chargepoint.startup import run_site_process
from cp_engine.app import run_engine
from cp_engine.settings import PROG, parse_settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    return run_site_process(PROG, "cp_engine", parse_settings, run_engine, argv)


if __name__ == "__main__":
    raise SystemExit(main())
