"""The command line every benchmark shares: its parser, the common flags, the run, the exit.

    def main(argv: list[str] | None = None) -> int:
        return cli.main("codec", __doc__, argv, _arguments, _run)

- :func:`parser`: ``python -m bench.NAME``'s, the module's docstring as its description,
  kept as written;
- :func:`number` and the common flags (:func:`workdir_argument`, :func:`step_arguments`),
  each help ending in its default;
- :func:`main`: parses, then runs ``run(args)``, which measures, calls
  ``bench.report.report`` (the table on stdout, bench/results/NAME.json) and returns the
  exit code. SIGTERM is taken as Ctrl+C: either one stops every child process (``finally``
  blocks, ``bench.procs.Children``) and the benchmark exits 130.

Exit codes: 0 measured (a missed target is in the report, not the code), 1 a benchmark's
own failure (``bench.slowclients``: a registration failed), 2 unusable flags or a missing
prerequisite (:class:`UsageError`, argparse's own), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

__all__ = [
    "INTERRUPTED",
    "UsageError",
    "interrupts_as_exceptions",
    "main",
    "number",
    "parser",
    "positive",
    "step_arguments",
    "work_directory",
    "workdir_argument",
]

INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl+C


class UsageError(Exception):
    """Flags that cannot be run: reported as argparse's usage errors are (exit 2)."""


def parser(name: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of ``python -m bench.<name>``, described by the module's docstring."""
    return argparse.ArgumentParser(
        prog=f"python -m bench.{name}",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def number(
    parser: argparse.ArgumentParser, flag: str, kind: type[float], default: float, what: str
) -> None:
    """Add ``flag``, an int or a float, whose help is ``what (default N)``."""
    parser.add_argument(flag, type=kind, default=default, help=f"{what} (default {default:g})")


def workdir_argument(parser: argparse.ArgumentParser) -> None:
    """``--workdir``: keep the database and the logs there (see :func:`work_directory`)."""
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="a new directory to keep the database and the logs of every process in "
        "(default: a temporary directory, removed at the end)",
    )


def step_arguments(
    parser: argparse.ArgumentParser, *, start: float, growth: float, step: float, hold: float
) -> None:
    """The flags of a search for the best rate sustained: steps up, then the best held."""
    number(parser, "--start-rate", float, start, "first rate tried, msg/s")
    number(parser, "--growth", float, growth, "rate factor between steps")
    number(parser, "--max-rate", float, 200_000, "stop stepping here, msg/s")
    number(parser, "--step-seconds", float, step, "seconds per step")
    number(parser, "--duration", float, hold, "seconds the best rate is held")


def positive(args: argparse.Namespace, *names: str) -> None:
    """Raise :class:`UsageError` unless every flag ``names`` (``dest`` names) is above 0."""
    if min(getattr(args, name) for name in names) <= 0:
        flags = [f"--{name.replace('_', '-')}" for name in names]
        listed = flags[0] if len(flags) == 1 else f"{', '.join(flags[:-1])} and {flags[-1]}"
        raise UsageError(f"{listed} must be positive")


@contextlib.contextmanager
def work_directory(path: Path | None, prefix: str) -> Iterator[Path]:
    """``path``, made now (it must not exist yet), or a temporary directory removed after."""
    if path is None:
        with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
            yield Path(tmp)
    else:
        path.mkdir(parents=True, exist_ok=False)
        yield path


@contextlib.contextmanager
def interrupts_as_exceptions() -> Iterator[None]:
    """SIGTERM behaves like Ctrl+C (KeyboardInterrupt), so ``finally`` blocks stop children."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(
    name: str,
    doc: str | None,
    argv: list[str] | None,
    arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
) -> int:
    """Parse ``argv`` with the flags ``arguments`` adds, then ``run``; the exit code.

    Raises:
        SystemExit: ``--help`` (0) or unusable flags (2), as argparse does.
    """
    cli = parser(name, doc)
    arguments(cli)
    args = cli.parse_args(argv)
    try:
        with interrupts_as_exceptions():
            return run(args)
    except UsageError as exc:
        cli.error(str(exc))
    except KeyboardInterrupt:
        print("interrupted: every child process was stopped", file=sys.stderr)
        return INTERRUPTED
