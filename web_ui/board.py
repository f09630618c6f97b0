"""The public board: every charge point, drivers, sessions, weather, errors and alerts."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template

from web_ui.deps import clients

__all__ = ["bp"]

bp = Blueprint("board", __name__)

FIRST_SNAPSHOT_WAIT = 3.0  # seconds a page waits for the board just after start-up


@bp.get("/")
def index() -> str:
    live = clients().live
    live.wait_ready(FIRST_SNAPSHOT_WAIT)
    board, status = live.view()
    return render_template("board.html", board=board, status=status, live="board")


@bp.get("/healthz")
def healthz() -> Response:
    """The dashboard's own health, for load balancers and tests."""
    live = clients().live
    status = live.status
    response = jsonify(status="ok" if status.ok else "degraded", **status.to_json())
    response.status_code = 200
    return response
