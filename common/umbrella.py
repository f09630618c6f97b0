"""``evcharging``: the umbrella command (``evcharging demo`` starts the whole system)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from common.config import ServiceParser, argv_or_default, run_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        parser = ServiceParser("evcharging", "EVCharging: network control for EV charge points.")
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        sub.add_parser("demo", help="start the whole system locally on embedded defaults")
        args = parser.parse_args(argv_or_default(argv))
        if args.command == "demo":
            print("evcharging demo: coming with the deployment issue", file=sys.stderr)
            return 1
        parser.print_help()
        return 0

    return run_main("evcharging", body)
