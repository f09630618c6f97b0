"""``ev-central``: the Central server, and driver account management.

ev-central [--listen HOST:PORT] [--api HOST:PORT] ...   run Central
ev-central drivers add ID [--secret-file FILE]          create a driver account
ev-central drivers list                                 list driver accounts

Settings are parsed and checked in :mod:`central.settings`; this module only wires.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from central.app import run_central
from central.drivers import add_driver, list_drivers
from central.settings import PROG, parse_drivers_settings, parse_settings
from central.workers import run_workers
from common.config import argv_or_default, run_main
from common.db.auditkeys import load_audit_keys
from common.logs import setup_logging

__all__ = ["main"]


def _serve(argv: list[str]) -> int:
    settings = parse_settings(argv)
    setup_logging("central", settings.log_level)
    if settings.workers > 1:
        return run_workers(
            argv, settings.workers, settings.listen, settings.api, settings.advertise
        )
    return run_central(settings, load_audit_keys(settings.data_dir))


def _drivers(argv: list[str]) -> int:
    settings = parse_drivers_settings(argv)
    setup_logging("central", "WARNING")
    if settings.add is not None:
        keys = load_audit_keys(settings.data_dir)
        secret = add_driver(settings.database_url, settings.add, settings.scrypt, keys)
        if settings.secret_file:
            settings.secret_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(settings.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secret + "\n")
        print(f"driver {settings.add} created; its secret (shown once):")
        print(secret)
        return 0
    for row in list_drivers(settings.database_url):
        print(f"{row['id']}\t{row['created_at']}\t{'disabled' if row['disabled'] else 'active'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = argv_or_default(argv)
    if args and args[0] == "drivers":
        return run_main(f"{PROG} drivers", lambda: _drivers(args[1:]))
    return run_main(PROG, lambda: _serve(args))


if __name__ == "__main__":
    sys.exit(main())
