"""The audit log: filters, the hash-chain check, CSV export. Operators only.

Entries carry source IP addresses, which are personal data of drivers, so the audit
log is behind the operator login (the public board shows driver ids only).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, render_template, request

from web_ui.deps import clients
from web_ui.errors import UpstreamRejected
from web_ui.security import operator_required

__all__ = ["audit_filters", "bp"]

bp = Blueprint("audit", __name__)

_TEXT = re.compile(r"[\w.:@-]{1,64}")
PAGE_SIZE = 200


def _utc(text: str) -> str:
    """``2026-11-21T10:00`` (a ``datetime-local`` field, read as UTC) as ISO 8601 with zone."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def audit_filters(args: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """API_Central's audit filters from the form, and what was wrong with them."""
    filters: dict[str, Any] = {}
    errors: list[str] = []
    for name, label in (("actor", "Actor"), ("action", "Action"), ("cp_id", "Charge point")):
        value = (args.get(name) or "").strip()
        if value and not _TEXT.fullmatch(value):
            errors.append(f"{label}: letters, digits and . : @ - _ only (64 at most).")
        elif value:
            filters[name] = value
    for name, label in (("since", "From"), ("until", "To")):
        value = (args.get(name) or "").strip()
        if not value:
            continue
        try:
            filters[name] = _utc(value)
        except ValueError:
            errors.append(f"{label}: expected a date and time such as 2026-11-21T10:00.")
    return filters, errors


@bp.get("/audit")
@operator_required
def audit() -> str:
    filters, errors = audit_filters(request.args)
    result: dict[str, Any] = {"entries": [], "total": 0, "chain": None}
    try:
        result = clients().central.audit({**filters, "limit": PAGE_SIZE})
    except UpstreamRejected as exc:
        errors.append(exc.message)
    return render_template(
        "audit.html",
        entries=result.get("entries", []),
        total=result.get("total", 0),
        chain=result.get("chain"),
        form={name: request.args.get(name, "") for name in ("actor", "action", "cp_id")}
        | {name: request.args.get(name, "") for name in ("since", "until")},
        query=filters,
        errors=errors,
        page_size=PAGE_SIZE,
    )


@bp.get("/audit.csv")
@operator_required
def audit_csv() -> Response:
    filters, errors = audit_filters(request.args)
    if errors:
        return Response("\n".join(errors) + "\n", status=400, mimetype="text/plain")
    body = clients().central.audit_csv({**filters, "limit": 100_000})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )
