"""Revenue and energy: totals, per day, per location and per CP, ticket history, CSV.

Days are UTC days, as API_Central counts them. API_Central sums per CP and per day; per
location is summed here from the CPs' locations as the live board knows them (a CP that
is no longer registered counts under "(unknown)"). Charts of thousands of CPs show the
top N and the rest as one bar; the CSV export has every row.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, render_template, request

from web_ui.charts import Chart, bar_chart, top_n
from web_ui.deps import clients
from web_ui.view import Board

__all__ = ["bp", "breakdown", "ticket_filters"]

bp = Blueprint("revenue", __name__)

_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
STATUSES = {
    "ended": "Finished",
    "supplying": "Supplying",
    "authorized": "Authorised",
    "cancelled": "Cancelled",
    "": "Any",
}
CHART_DAYS = 14
TOP = 10  # bars per chart before "the others"
TABLE_CPS = 20  # rows of the per-CP table on the page (the CSV has them all)
UNKNOWN = "(unknown)"
BREAKDOWNS = {"day": "Day (UTC)", "location": "Location", "cp": "Charge point"}


def ticket_filters(args: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The ticket-history filters from a query string, and what was wrong with them."""
    errors: list[str] = []
    filters: dict[str, Any] = {"status": args.get("status", "ended"), "limit": 100}
    if filters["status"] not in STATUSES:
        errors.append("Unknown status; showing finished sessions.")
        filters["status"] = "ended"
    for name, label in (("cp_id", "Charge point"), ("driver_id", "Driver")):
        value = (args.get(name) or "").strip()
        if value and not _ID.fullmatch(value):
            errors.append(f"{label} ids are 1-32 letters, digits, '-' or '_'.")
        elif value:
            filters[name] = value
    return filters, errors


def breakdown(
    stats: Mapping[str, Any], by: str, locations: Mapping[str, str]
) -> list[dict[str, Any]]:
    """Rows ``{key, sessions, kwh, eur}`` per day, per location or per CP.

    Args:
        stats: ``GET /api/stats``.
        by: one of :data:`BREAKDOWNS`.
        locations: each CP's location.
    """
    if by == "day":
        return [_row(r["day"], r) for r in stats.get("per_day", [])]
    if by == "cp":
        return [_row(r["cp_id"], r) for r in stats.get("per_cp", [])]
    sums: dict[str, dict[str, Any]] = {}
    for r in stats.get("per_cp", []):
        place = locations.get(r["cp_id"]) or UNKNOWN
        row = sums.setdefault(place, _row(place, {}))
        row["sessions"] += int(r.get("sessions") or 0)
        row["kwh"] = round(row["kwh"] + float(r.get("kwh") or 0), 3)
        row["eur"] = round(row["eur"] + float(r.get("eur") or 0), 2)
    return [sums[k] for k in sorted(sums, key=str.casefold)]


def _row(key: str, r: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "key": key,
        "sessions": int(r.get("sessions") or 0),
        "kwh": float(r.get("kwh") or 0),
        "eur": float(r.get("eur") or 0),
    }


def _locations() -> dict[str, str]:
    def read(board: Board) -> dict[str, str]:
        return {t.id: t.location for t in board.tiles.values()}

    found: dict[str, str] = clients().live.read(read)
    return found


def _revenue_and_energy(rows: list[dict[str, Any]], of: str, *, top: bool) -> list[Chart]:
    """The revenue and the energy bar chart of ``rows``; with ``top``, the TOP largest
    and the rest as one bar (readable with thousands of CPs)."""
    charts = []
    for field, what, unit, decimals in (("eur", "Revenue", "€", 2), ("kwh", "Energy", "kWh", 1)):
        points = [(r["key"], r[field]) for r in rows]
        charts.append(
            bar_chart(
                top_n(points, TOP) if top else points,
                title=f"{what} {of}",
                unit=unit,
                decimals=decimals,
            )
        )
    return charts


@bp.get("/revenue")
def revenue() -> str:
    central = clients().central
    filters, errors = ticket_filters(request.args)
    stats = central.stats()
    tickets = central.sessions(filters)
    today = datetime.now(UTC).date().isoformat()
    empty = {"sessions": 0, "kwh": 0.0, "eur": 0.0}
    today_row = next((d for d in stats.get("per_day", []) if d.get("day") == today), empty)
    per_day = breakdown(stats, "day", {})
    per_location = breakdown(stats, "location", _locations())
    per_cp = breakdown(stats, "cp", {})
    recent = per_day[-CHART_DAYS:]
    charts = [
        *_revenue_and_energy(recent, f"per day (last {CHART_DAYS} days, UTC)", top=False),
        *_revenue_and_energy(per_location, f"per location (top {TOP})", top=True),
        *_revenue_and_energy(per_cp, f"per charge point (top {TOP})", top=True),
    ]
    top_cps = sorted(per_cp, key=lambda r: (-r["eur"], r["key"]))[:TABLE_CPS]
    return render_template(
        "revenue.html",
        stats=stats,
        today=today_row,
        today_date=today,
        per_cp=top_cps,
        cp_count=len(per_cp),
        per_day=per_day,
        per_location=per_location,
        charts=charts,
        tickets=tickets,
        filters=filters,
        errors=errors,
        statuses=STATUSES,
        live="revenue",
    )


@bp.get("/revenue.csv")
def revenue_csv() -> Response:
    """Every row of one breakdown: ``?by=day|location|cp``."""
    by = request.args.get("by", "day")
    if by not in BREAKDOWNS:
        text = f"by= is one of {', '.join(BREAKDOWNS)}\n"
        return Response(text, status=400, mimetype="text/plain")
    stats = clients().central.stats()
    rows = breakdown(stats, by, _locations() if by == "location" else {})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([{"cp": "cp_id"}.get(by, by), "sessions", "energy_kwh", "revenue_eur"])
    for r in rows:
        writer.writerow([r["key"], r["sessions"], f"{r['kwh']:.3f}", f"{r['eur']:.2f}"])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="revenue-by-{by}-{stamp}.csv"'},
    )
