"""``evcharging``: the umbrella command (``evcharging demo`` starts the whole system)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common.config import ServiceParser, argv_or_default, run_main
from common.logs import setup_logging
from demo import Demo, add_demo_options, install_signal_handlers, resolve_settings
from demo.screen import RichScreen, Screen

__all__ = ["main"]

DEMO_HELP = """Start the whole system on this machine: the embedded broker, a SQLite database,
the Registry, Central (TCP and API_Central), the weather office (simulated), the web
dashboard, --cps charge points (engine + monitor each, registered automatically, spread
over a few cities with different prices), --ocpp-cps OCPP 1.6J chargers (ev-ocpp-sim, on
Central's OCPP listener) and --drivers automated drivers. Every service
is a supervised child process: one that crashes is reported and restarted. Ctrl+C stops
everything. Tokens are fresh per run unless EV_OPERATOR_TOKEN / EV_PROVISIONING_TOKEN
(or their _FILE variants) are set. See docs/demo.md."""


def main(argv: Sequence[str] | None = None) -> int:
    def body() -> int:
        parser = ServiceParser("evcharging", "EVCharging: network control for EV charge points.")
        sub = parser.add_subparsers(dest="command", metavar="COMMAND")
        demo = sub.add_parser(
            "demo",
            help="start the whole system locally on embedded defaults",
            description=DEMO_HELP,
        )
        add_demo_options(demo)
        args = parser.parse_args(argv_or_default(argv))
        if args.command == "demo":
            return _demo(args)
        parser.print_help()
        return 0

    return run_main("evcharging", body)


def _demo(args: argparse.Namespace) -> int:
    setup_logging("evcharging", "WARNING")
    settings = resolve_settings(args)
    screen = RichScreen() if sys.stdout.isatty() else Screen()
    demo = Demo(settings, screen)
    undo = install_signal_handlers(demo)
    try:
        return demo.run()
    finally:
        undo()


if __name__ == "__main__":
    sys.exit(main())
