"""Revenue and energy: totals today and overall, per CP and per day, and ticket history.

Days are UTC days, as API_Central counts them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, render_template, request

from web_ui.charts import bar_chart
from web_ui.deps import clients

__all__ = ["bp", "ticket_filters"]

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


@bp.get("/revenue")
def revenue() -> str:
    central = clients().central
    filters, errors = ticket_filters(request.args)
    stats = central.stats()
    tickets = central.sessions(filters)
    today = datetime.now(UTC).date().isoformat()
    empty = {"sessions": 0, "kwh": 0.0, "eur": 0.0}
    today_row = next((d for d in stats.get("per_day", []) if d.get("day") == today), empty)
    per_cp = stats.get("per_cp", [])
    per_day = stats.get("per_day", [])[-CHART_DAYS:]
    charts = [
        bar_chart(
            [(row["cp_id"], float(row["eur"])) for row in per_cp],
            title="Revenue per charge point",
            unit="€",
        ),
        bar_chart(
            [(row["day"], float(row["kwh"])) for row in per_day],
            title=f"Energy per day (last {CHART_DAYS} days, UTC)",
            unit="kWh",
            decimals=1,
        ),
    ]
    return render_template(
        "revenue.html",
        stats=stats,
        today=today_row,
        today_date=today,
        per_cp=per_cp,
        per_day=per_day,
        charts=charts,
        tickets=tickets,
        filters=filters,
        errors=errors,
        statuses=STATUSES,
        live="revenue",
    )
