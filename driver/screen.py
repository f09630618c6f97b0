"""Where the driver's output goes: plain timestamped lines, or rich on a terminal.

Plain mode (``--no-tty``, or stdout not a terminal) prints one line per event, each
starting with a local ISO-8601 time, so output can be logged, grepped and timed:

    2026-05-04T10:00:01.123+02:00 charging CP1: 11.0 kW 2.345 kWh 0.94 € 00:12

Terminal mode keeps the steps as lines and shows progress in a rich Live table that
refreshes four times a second (the elapsed time runs between telemetry messages).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TextIO

from rich.console import Console, RenderableType
from rich.live import Live
from rich.markup import escape

from driver.charge import Progress
from driver.render import progress_line, progress_table

__all__ = ["PlainScreen", "RichScreen", "Screen"]

PLAIN_WIDTH = 120  # tables in logs: wide enough that outcome reasons do not wrap


class Screen(Protocol):
    def say(self, text: str, style: str = "") -> None:
        """One step, on stdout."""

    def warn(self, text: str) -> None:
        """A problem, on stderr."""

    def progress(self, snapshot: Callable[[], Progress]) -> None:
        """New telemetry; ``snapshot`` gives the figures now."""

    def end_progress(self) -> None:
        """The charge is over: stop any live display."""

    def show(self, renderable: RenderableType) -> None:
        """A table."""


class PlainScreen:
    """Timestamped lines, flushed at once (a test or a log reads them as they come)."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        now: Callable[[], datetime] = lambda: datetime.now().astimezone(),
    ) -> None:
        self._out = out or sys.stdout
        self._err = err or sys.stderr
        self._now = now

    def _stamp(self) -> str:
        return self._now().isoformat(timespec="milliseconds")

    def say(self, text: str, style: str = "") -> None:
        print(f"{self._stamp()} {text}", file=self._out, flush=True)

    def warn(self, text: str) -> None:
        print(f"{self._stamp()} {text}", file=self._err, flush=True)

    def progress(self, snapshot: Callable[[], Progress]) -> None:
        self.say(progress_line(snapshot()))

    def end_progress(self) -> None:
        pass

    def show(self, renderable: RenderableType) -> None:
        console = Console(
            file=self._out, width=PLAIN_WIDTH, no_color=True, highlight=False, emoji=False
        )
        console.print(renderable)
        self._out.flush()


class _LiveProgress:
    """Rendered afresh at every refresh, so elapsed time moves between messages."""

    def __init__(self, snapshot: Callable[[], Progress]) -> None:
        self.snapshot = snapshot

    def __rich__(self) -> RenderableType:
        return progress_table(self.snapshot())


class RichScreen:
    """A terminal: styled steps, a live progress table."""

    def __init__(self, console: Console | None = None, err: Console | None = None) -> None:
        self._console = console or Console(highlight=False)
        self._err = err or Console(stderr=True, highlight=False)
        self._live: Live | None = None
        self._view: _LiveProgress | None = None

    def say(self, text: str, style: str = "") -> None:
        stamp = datetime.now().strftime("%H:%M:%S")
        body = f"[{style}]{escape(text)}[/]" if style else escape(text)
        self._console.print(f"[dim]{stamp}[/] {body}")

    def warn(self, text: str) -> None:
        self._err.print(f"[yellow]{escape(text)}[/]")

    def progress(self, snapshot: Callable[[], Progress]) -> None:
        if self._live is None or self._view is None:
            self._view = _LiveProgress(snapshot)
            self._live = Live(self._view, console=self._console, refresh_per_second=4)
            self._live.start()
        else:
            self._view.snapshot = snapshot
            self._live.refresh()

    def end_progress(self) -> None:
        if self._live is not None:
            self._live.stop()
        self._live = self._view = None

    def show(self, renderable: RenderableType) -> None:
        self._console.print(renderable)
