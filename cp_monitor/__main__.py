"""``ev-cp-monitor``: the charge point's supervisor (see ``ev-cp-monitor --help``)."""

from __future__ import annotations

from collections.abc import Sequence

from common.chargepoint.startup import run_site_process
from cp_monitor.app import run_monitor
from cp_monitor.settings import PROG, parse_settings

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    return run_site_process(PROG, "cp_monitor", parse_settings, run_monitor, argv)


if __name__ == "__main__":
    raise SystemExit(main())
