"""Entry point for services whose issue has not landed yet."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from common.config import ServiceParser, argv_or_default, run_main

__all__ = ["placeholder_main"]


def placeholder_main(prog: str, description: str, argv: Sequence[str] | None) -> int:
    """Print ``--help`` on request; otherwise say the service is not built yet, exit 1."""

    def body() -> int:
        parser = ServiceParser(prog, f"{description}\n\nThis service is not built yet.")
        parser.parse_args(argv_or_default(argv))
        print(f"{prog}: not built yet - see the project's open issues", file=sys.stderr)
        return 1

    return run_main(prog, body)
