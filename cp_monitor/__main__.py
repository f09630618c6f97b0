"""`ev-cp-monitor`: not built yet; it says so instead of pretending to work."""

from __future__ import annotations

from collections.abc import Sequence

from common.placeholder import placeholder_main

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    return placeholder_main(
        "ev-cp-monitor", "Charge-point monitor: health checks, registration, authentication.", argv
    )


if __name__ == "__main__":
    raise SystemExit(main())
