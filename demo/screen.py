"""What the demo shows: plain lines, or a rich live board on a terminal.

The renderers are pure functions of a :class:`Status`; :class:`PlainScreen` and
:class:`RichScreen` only decide where and when they go.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from demo.supervisor import ChildStatus, Notice

__all__ = [
    "PlainScreen",
    "RichScreen",
    "Screen",
    "ServiceLine",
    "Status",
    "stats_since",
    "status_line",
    "summary_lines",
]

_STATE_STYLE = {
    "ACTIVATED": "green",
    "SUPPLYING": "bold green",
    "STOPPED": "dark_orange",
    "BROKEN": "bold red",
    "DISCONNECTED": "grey50",
}


@dataclass(frozen=True)
class ServiceLine:
    """One line of the start-up listing: ``Registry  https://127.0.0.1:8443  (CA ...)``."""

    name: str
    address: str
    detail: str = ""


@dataclass
class Status:
    """A snapshot for the live board and the periodic status line."""

    elapsed: float
    duration: float | None
    children: Sequence[ChildStatus] = ()
    cps: Sequence[dict[str, Any]] = ()  # GET /api/chargepoints
    stats: dict[str, Any] | None = None  # GET /api/stats
    api_error: str | None = None
    dashboard: str | None = None


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _money(value: Any) -> str:
    return f"{float(value):.2f} €"


def stats_since(baseline: dict[str, Any] | None, now: dict[str, Any]) -> dict[str, Any]:
    """``GET /api/stats`` totals of this run only: ``now`` minus ``baseline``.

    A reused data directory holds earlier runs' sessions; the summary is about this one.
    """
    if not baseline:
        return now
    before = {row["cp_id"]: row for row in baseline.get("per_cp", [])}
    per_cp = []
    for row in now.get("per_cp", []):
        old = before.get(row["cp_id"], {})
        sessions = row["sessions"] - old.get("sessions", 0)
        if sessions:
            kwh = round(float(row["kwh"]) - float(old.get("kwh", 0)), 3)
            eur = round(float(row["eur"]) - float(old.get("eur", 0)), 2)
            per_cp.append({"cp_id": row["cp_id"], "sessions": sessions, "kwh": kwh, "eur": eur})
    return {
        **now,
        "sessions_finished": now["sessions_finished"] - baseline["sessions_finished"],
        "energy_kwh": round(float(now["energy_kwh"]) - float(baseline["energy_kwh"]), 3),
        "revenue_eur": round(float(now["revenue_eur"]) - float(baseline["revenue_eur"]), 2),
        "per_cp": per_cp,
    }


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _totals(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "totals unavailable"
    return (
        f"{_plural(int(stats.get('sessions_finished', 0)), 'session')} finished, "
        f"{float(stats.get('energy_kwh', 0)):.3f} kWh, {_money(stats.get('revenue_eur', 0))}"
    )


def _states(cps: Sequence[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for cp in cps:
        counts[str(cp.get("state"))] = counts.get(str(cp.get("state")), 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "none yet"


def _troubled(children: Sequence[ChildStatus]) -> list[str]:
    out = []
    for child in children:
        if child.restart_in is not None:
            out.append(f"{child.name} restarting in {child.restart_in:.0f} s")
        elif not child.running:
            out.append(f"{child.name} down")
    return out


def status_line(status: Status) -> str:
    """``12:00:30 CPs: 1 ACTIVATED, 2 SUPPLYING; 3 sessions finished, 7.512 kWh, 2.63 €``."""
    parts = [f"CPs: {_states(status.cps)}"]
    charging = [
        f"{cp['id']}→{(cp.get('session') or {}).get('driver_id', '?')}"
        for cp in status.cps
        if cp.get("state") == "SUPPLYING"
    ]
    if charging:
        parts.append("charging " + " ".join(charging))
    parts.append(_totals(status.stats) if status.api_error is None else status.api_error)
    trouble = _troubled(status.children)
    if trouble:
        parts.append("; ".join(trouble))
    return f"{_clock()} " + "; ".join(parts)


def summary_lines(stats: dict[str, Any] | None, elapsed: float, reason: str) -> list[str]:
    """The closing summary: totals, then one line per charge point."""
    lines = [f"Summary after {elapsed:.0f} s ({reason}):"]
    if stats is None:
        lines.append("  totals unavailable: API_Central did not answer")
        return lines
    lines.append(f"  Sessions finished: {stats.get('sessions_finished', 0)}")
    lines.append(f"  Energy: {float(stats.get('energy_kwh', 0)):.3f} kWh")
    lines.append(f"  Revenue: {float(stats.get('revenue_eur', 0)):.2f} €")
    for row in stats.get("per_cp", []):
        plural = "" if row["sessions"] == 1 else "s"
        lines.append(
            f"    {row['cp_id']:<6} {row['sessions']:>3} session{plural:<1} "
            f"{float(row['kwh']):>9.3f} kWh {float(row['eur']):>8.2f} €"
        )
    return lines


class Screen:
    """Plain lines: for pipes, log files, CI and tests."""

    def __init__(self, out: TextIO | None = None, status_every: float = 15.0) -> None:
        self._out = out or sys.stdout
        self._status_every = status_every
        self._last_status = 0.0

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)

    def services(self, lines: Sequence[ServiceLine]) -> None:
        width = max((len(line.name) for line in lines), default=0)
        for line in lines:
            detail = f"  ({line.detail})" if line.detail else ""
            self.say(f"  {line.name:<{width}}  {line.address}{detail}")

    def notice(self, notice: Notice) -> None:
        mark = {"error": "✗ ", "warning": "! "}.get(notice.level, "")
        self.say(f"{_clock()} {mark}{notice.child}: {notice.text}")

    def live(self) -> None:
        """The system is up: from now on :meth:`update` is called every second or so."""

    def update(self, status: Status) -> None:
        now = time.monotonic()
        if now - self._last_status >= self._status_every:
            self._last_status = now
            self.say(status_line(status))

    def close(self) -> None:
        """Leave the live display, if any."""


PlainScreen = Screen


class RichScreen(Screen):
    """A live board on a terminal: the charge points, the processes and the totals."""

    def __init__(self, console: Console | None = None) -> None:
        super().__init__()
        self._console = console or Console(highlight=False)
        self._live: Live | None = None

    def say(self, text: str) -> None:
        self._console.print(escape(text))

    def notice(self, notice: Notice) -> None:
        style = {"error": "bold red", "warning": "yellow"}.get(notice.level, "cyan")
        mark = {"error": "✗ ", "warning": "! "}.get(notice.level, "")
        line = Text(f"{_clock()} ")
        line.append(f"{mark}{notice.child}: ", style=style)
        line.append(notice.text)
        self._console.print(line)

    def live(self) -> None:
        self._live = Live(
            Text("starting…"), console=self._console, refresh_per_second=2, transient=True
        )
        self._live.start()

    def update(self, status: Status) -> None:
        if self._live is not None:
            self._live.update(board(status))

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def _processes(children: Sequence[ChildStatus]) -> Text:
    """``processes: 13/13 running`` and, if any, which are down or were restarted."""
    up = sum(1 for child in children if child.running)
    line = Text("processes: ")
    line.append(f"{up}/{len(children)} running", "green" if up == len(children) else "bold red")
    for text in _troubled(children):
        line.append(f"; {text}", "bold red")
    restarted = [f"{c.name} ({c.restarts})" for c in children if c.restarts and c.running]
    if restarted:
        line.append("; restarted: " + ", ".join(restarted), "yellow")
    return line


def board(status: Status) -> Group:
    """The live board: a table of charge points, the processes, the totals."""
    table = Table(title="EVCharging demo", title_justify="left", expand=False)
    for column, justify in (
        ("CP", "left"),
        ("location", "left"),
        ("€/kWh", "right"),
        ("state", "left"),
        ("driver", "left"),
        ("kWh", "right"),
        ("€", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for cp in status.cps:
        state = str(cp.get("state", "?"))
        session = cp.get("session") or {}
        table.add_row(
            str(cp.get("id")),
            str(cp.get("location", "")),
            f"{float(cp.get('price_eur_kwh', 0)):.2f}",
            Text(state, style=_STATE_STYLE.get(state, "")),
            str(session.get("driver_id", "")),
            f"{float(session['kwh']):.2f}" if "kwh" in session else "",
            f"{float(session['eur']):.2f}" if "eur" in session else "",
        )
    processes = _processes(status.children)
    totals = Text(
        _totals(status.stats) if status.api_error is None else status.api_error,
        style="bold" if status.api_error is None else "red",
    )
    timing = f"dashboard {status.dashboard} · " if status.dashboard else ""
    timing += f"running {status.elapsed:.0f} s"
    if status.duration is not None:
        timing += f" of {status.duration:.0f} s"
    timing += " · Ctrl+C stops everything"
    return Group(table, totals, processes, Text(timing, style="dim"))
