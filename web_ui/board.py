"""The public board: the network's summary, a list of charge points that scales, the map.

``/`` takes the list's filters from its query string (:class:`~web_ui.fleet.Query`), so a
view can be bookmarked and shared; only the rows of one page are in the document.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, render_template, request

from web_ui.deps import clients
from web_ui.fleet import SIZES, Query, select, summarise
from web_ui.geo import layout
from web_ui.view import Board

__all__ = ["bp"]

bp = Blueprint("board", __name__)

FIRST_SNAPSHOT_WAIT = 3.0  # seconds a page waits for the board just after start-up


@bp.get("/")
def index() -> str:
    live = clients().live
    live.wait_ready(FIRST_SNAPSHOT_WAIT)
    query = Query.parse(request.args)

    def render(board: Board) -> str:
        # Under the board's lock, without copying 10,000 tiles: one page is rendered.
        summary = summarise(board)
        return render_template(
            "board.html",
            board=board,
            query=query,
            page=select(board, query),
            summary=summary,
            geo=layout(summary.locations),
            sizes=SIZES,
            live="board",
        )

    html: str = live.read(render)
    return html


@bp.get("/healthz")
def healthz() -> Response:
    """The dashboard's own health, for load balancers and tests."""
    live = clients().live
    status = live.status
    response = jsonify(status="ok" if status.ok else "degraded", **status.to_json())
    response.status_code = 200
    return response
