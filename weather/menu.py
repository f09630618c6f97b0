"""The office's menu on stdin: ``add CITY``, ``remove CITY``, ``list``, ``quit``, ``help``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TextIO

from weather.app import WeatherOffice
from weather.errors import InvalidLocation, LocationsFileError

__all__ = ["HELP", "run_menu"]

HELP = "commands: add CITY | remove CITY | list | quit"


def _fmt(row: dict[str, object]) -> str:
    temp = row["temperature_c"]
    shown = "   ? °C" if temp is None else f"{float(temp):5.1f} °C"  # type: ignore[arg-type]
    extra = f"  ({row['reason']})" if row["reason"] else ""
    pending = "" if row["delivered"] else "  [alert change not delivered yet]"
    return f"  {row['location']:<24} {row['status']:<8} {shown}{extra}{pending}"


def run_menu(
    lines: Iterable[str], office: WeatherOffice, out: TextIO, quit_: Callable[[], None]
) -> None:
    """Execute commands from ``lines`` until ``quit`` (then call ``quit_``) or end of input."""
    for raw in lines:
        command, _, arg = raw.strip().partition(" ")
        command, arg = command.lower(), arg.strip()
        try:
            if not command:
                continue
            if command == "quit":
                quit_()
                return
            if command == "list":
                rows = office.snapshot()
                print(_fmt_all(rows), file=out)
            elif command == "add" and arg:
                added = office.book.add(arg)
                print(f"watching {arg}" if added else f"{arg} is already watched", file=out)
            elif command == "remove" and arg:
                removed = office.book.remove(arg)
                print(f"no longer watching {arg}" if removed else f"{arg} is not watched", file=out)
            else:
                print(HELP, file=out)
        except (InvalidLocation, LocationsFileError) as exc:
            print(f"error: {exc}", file=out)
        out.flush()


def _fmt_all(rows: list[dict[str, object]]) -> str:
    if not rows:
        return "no locations watched (add CITY)"
    return "\n".join(_fmt(r) for r in rows)
