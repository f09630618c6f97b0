"""What a charge point shows and reads: rich on a terminal, plain lines otherwise.

Shared by the engine and the monitor. Output: one line per notice (tests and log
files read plain lines; a terminal gets colours and tables). Input: on a terminal,
single keys act at once (keys taking a number wait for Enter); on a pipe or file,
each line is one command. End of input never stops the service: it keeps running
unattended.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["KeyReader", "Level", "Screen"]


class Level(StrEnum):
    INFO = "info"
    GOOD = "good"
    WARN = "warn"
    BAD = "bad"


_STYLES = {Level.INFO: "", Level.GOOD: "green", Level.WARN: "yellow", Level.BAD: "bold red"}


class Screen:
    """Prints notices; ``tty`` (default: whether ``stream`` is a terminal) picks rich."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None) -> None:
        self._stream = stream or sys.stdout
        self.tty = self._stream.isatty() if tty is None else tty
        self._console = Console(file=self._stream, highlight=False) if self.tty else None
        self._lock = threading.Lock()

    def say(self, level: Level, text: str) -> None:
        with self._lock:
            if self._console is not None:
                stamp = time.strftime("%H:%M:%S")
                line = f"[dim]{stamp}[/dim] {escape(text)}"  # our text is never markup
                self._console.print(line, style=_STYLES[level], markup=True)
            else:
                self._stream.write(text + "\n")
                self._stream.flush()

    def table(self, title: str, rows: Iterable[tuple[str, str]]) -> None:
        rows = list(rows)
        with self._lock:
            if self._console is not None:
                table = Table(title=title, show_header=False)
                for key, value in rows:
                    table.add_row(escape(key), escape(value))
                self._console.print(table)
            else:
                self._stream.write(f"{title}: " + "; ".join(f"{k}: {v}" for k, v in rows) + "\n")
                self._stream.flush()


class KeyReader:
    """Reads commands from stdin in a daemon thread and hands each to ``on_line``.

    Args:
        on_line: called (from the reader thread) with each command line.
        immediate: keys that act at once on a terminal (no Enter needed).
        stream: the input (stdin).
    """

    def __init__(
        self,
        on_line: Callable[[str], object],
        immediate: Callable[[str], bool],
        stream: TextIO | None = None,
    ) -> None:
        self._on_line = on_line
        self._immediate = immediate
        self._stream = stream or sys.stdin
        self._restore: Callable[[], None] | None = None

    def start(self) -> None:
        tty = False
        with contextlib.suppress(ValueError, OSError):
            tty = self._stream.isatty()
        target = self._keys if tty else self._lines
        if tty:
            self._cbreak()
        threading.Thread(target=target, name="stdin", daemon=True).start()

    def close(self) -> None:
        if self._restore is not None:
            self._restore()
            self._restore = None

    def _cbreak(self) -> None:
        import termios
        import tty as tty_mod

        fd = self._stream.fileno()
        saved = termios.tcgetattr(fd)
        tty_mod.setcbreak(fd)
        self._restore = lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved)

    def _lines(self) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in self._stream:
                if line.strip():
                    self._on_line(line.strip())

    def _keys(self) -> None:
        fd = self._stream.fileno()
        buffer = ""
        while True:
            try:
                data = os.read(fd, 64)
            except OSError:
                return
            if not data:
                return
            for char in data.decode("utf-8", errors="ignore"):
                if char in "\r\n":
                    if buffer.strip():
                        self._echo("\n")
                        self._on_line(buffer.strip())
                    buffer = ""
                elif char in "\x7f\b":
                    if buffer:
                        buffer = buffer[:-1]
                        self._echo("\b \b")
                elif char == "\x1b":
                    buffer = ""
                    self._echo("\n")
                elif char.isprintable():
                    if not buffer and self._immediate(char):
                        self._on_line(char)
                    else:
                        buffer += char
                        self._echo(char)

    @staticmethod
    def _echo(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
