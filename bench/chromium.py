"""Debian's Chromium, as ``bench.board`` and the browser tests launch it through Playwright.

Playwright's own browser downloads are never used: the machine may have no internet.
``make chromium`` installs this one.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CHROMIUM", "CHROMIUM_ARGS"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
