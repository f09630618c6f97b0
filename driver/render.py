"""Words and tables the driver shows (pure: strings and rich renderables, no output)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.table import Table

from driver.charge import Outcome, OutcomeKind, Progress

__all__ = [
    "cp_table",
    "format_elapsed",
    "format_eur",
    "format_kwh",
    "history_table",
    "outcome_table",
    "progress_line",
    "progress_table",
    "session_line",
    "ticket_line",
]


def format_elapsed(seconds: float) -> str:
    """``00:12``, ``59:59``, ``1:00:00`` (hours only when there are some)."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def format_kwh(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} kWh"


def format_eur(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} €"


def format_price(value: Any) -> str:
    try:
        return f"{float(value):.2f} €/kWh"
    except (TypeError, ValueError):
        return "? €/kWh"


def progress_line(p: Progress) -> str:
    """``charging CP1: 11.0 kW 2.345 kWh 0.94 € 00:12``."""
    return (
        f"charging {p.cp_id}: {p.kw:.1f} kW {format_kwh(p.kwh)} {format_eur(p.eur)} "
        f"{format_elapsed(p.elapsed)}"
    )


def progress_table(p: Progress) -> Table:
    table = Table(title=f"Charging at {p.cp_id}", title_justify="left")
    for column in ("kW", "kWh", "€", "elapsed"):
        table.add_column(column, justify="right")
    table.add_row(f"{p.kw:.1f}", f"{p.kwh:.3f}", f"{p.eur:.2f}", format_elapsed(p.elapsed))
    return table


def ticket_line(ticket: Mapping[str, Any]) -> str:
    """``ticket CP1: 2.500 kWh x 0.40 €/kWh = 1.00 € (unplugged) 10:00:01-10:04:30``."""
    kwh = _float(ticket.get("kwh"))
    span = _span(ticket.get("start"), ticket.get("end"))
    reason = ticket.get("reason")
    total = format_eur(_float(ticket.get("total_eur")))
    return (
        f"ticket {ticket.get('cp_id', '?')}: {format_kwh(kwh)} x "
        f"{format_price(ticket.get('price_eur_kwh'))} = {total}"
        + (f" ({reason})" if reason else "")
        + (f" {span}" if span else "")
        + f" session {ticket.get('session_id', '?')}"
    )


def session_line(session: Mapping[str, Any]) -> str:
    """A charge Central still holds for this driver, in one line."""
    where = session.get("cp_id", "?")
    if session.get("status") == "authorized":
        return (
            f"authorised at {where}, waiting for the vehicle (session {session.get('session_id')})"
        )
    return (
        f"charging at {where}: {format_kwh(_float(session.get('kwh')))} "
        f"{format_eur(_float(session.get('eur')))} so far (session {session.get('session_id')})"
    )


def cp_table(cps: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="Free charge points", title_justify="left")
    table.add_column("CP")
    table.add_column("location")
    table.add_column("price", justify="right")
    for cp in cps:
        table.add_row(
            str(cp.get("id")), str(cp.get("location", "")), format_price(cp.get("price_eur_kwh"))
        )
    return table


def history_table(tickets: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title="Tickets", title_justify="left")
    for column, justify in (
        ("ended", "left"),
        ("CP", "left"),
        ("kWh", "right"),
        ("price", "right"),
        ("total", "right"),
        ("reason", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for t in tickets:
        table.add_row(
            _local_time(t.get("end"), with_date=True),
            str(t.get("cp_id", "?")),
            f"{_float(t.get('kwh')) or 0:.3f}",
            format_price(t.get("price_eur_kwh")),
            format_eur(_float(t.get("total_eur"))),
            str(t.get("reason") or ""),
        )
    return table


def outcome_table(outcomes: Sequence[tuple[int, Outcome]]) -> Table:
    """The summary of ``run``: one row per service (its line in the file) and totals."""
    table = Table(title="Services", title_justify="left", show_footer=True)
    charged = [o for _, o in outcomes if o.kind is OutcomeKind.CHARGED]
    total_kwh = sum(o.kwh or 0 for o in charged)
    total_eur = sum(o.eur or 0 for o in charged)
    table.add_column("line", justify="right", footer="")
    table.add_column("CP", footer="total")
    table.add_column("outcome", footer=f"{len(charged)}/{len(outcomes)} charged")
    table.add_column("kWh", justify="right", footer=f"{total_kwh:.3f}")
    table.add_column("€", justify="right", footer=f"{total_eur:.2f}")
    for line, o in outcomes:
        table.add_row(
            str(line),
            o.cp_id,
            o.describe(),
            "-" if o.kwh is None else f"{o.kwh:.3f}",
            "-" if o.eur is None else f"{o.eur:.2f}",
        )
    return table


def _float(value: Any) -> float | None:
    try:
        return None if value is None or isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return None


def _local_time(text: Any, with_date: bool = False) -> str:
    if not isinstance(text, str):
        return "-"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is not None:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def _span(start: Any, end: Any) -> str:
    if not isinstance(end, str):
        return ""
    return (
        f"{_local_time(start)}-{_local_time(end)}" if isinstance(start, str) else _local_time(end)
    )
