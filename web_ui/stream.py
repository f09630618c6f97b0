"""``GET /events``: the live feed, as Server-Sent Events.

The stream starts with a ``snapshot`` of what the page shows, then, a few times a second
while the board changes, one ``update`` with the latest state of that (coalesced: never
a backlog), ``status`` when Central or the broker comes or goes, and a comment every few
seconds so a dead connection is noticed. The browser's ``EventSource`` reconnects by
itself and gets a fresh snapshot, so nothing is lost across a reconnect.

The query string says what the page shows: ``for`` (``board``, ``operator`` or
``revenue``), the board's filters (:class:`~web_ui.fleet.Query`: ``state``, ``location``,
``q``, ``why``, ``sort``, ``page``, ``size``) and ``client``, the page's own random id: a
page that changes its filters opens a new stream, and the server closes the old one at
once rather than when its socket times out; with ``since``, the ``mark`` of the last
message it had, the new stream leaves out the panels that page already shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from flask import Blueprint, Response, request

from web_ui.deps import clients
from web_ui.fanout import KINDS
from web_ui.fleet import Query

__all__ = ["bp"]

bp = Blueprint("stream", __name__)

KEEPALIVE = 10.0  # seconds between comments on a quiet stream
RETRY_MS = 1500  # how soon a browser reconnects
_CLIENT = re.compile(r"[A-Za-z0-9_-]{8,64}")


@bp.get("/events")
def events() -> Response:
    live = clients().live
    kind = request.args.get("for", "board")
    if kind not in KINDS:
        return Response(f"for= is one of {', '.join(KINDS)}\n", status=400, mimetype="text/plain")
    client = request.args.get("client", "")
    if client and not _CLIENT.fullmatch(client):
        return Response("client= is 8-64 letters, digits, - or _\n", 400, mimetype="text/plain")
    since = request.args.get("since", "")[:64]  # checked against the server's own marks
    opened = live.subscribe(kind, Query.parse(request.args), client, since)
    if opened is None:
        return Response(
            "too many open pages\n",
            status=503,
            mimetype="text/plain",
            headers={"Retry-After": "5"},
        )

    sub, first = opened

    def stream() -> Iterator[bytes]:
        try:
            yield f"retry: {RETRY_MS}\n\n".encode() + first
            while True:
                message = live.next_message(sub, KEEPALIVE)
                if message is None:
                    return  # closed: the server stops, or the page opened a new stream
                yield message or b": keep-alive\n\n"
        finally:
            live.unsubscribe(sub)

    return Response(
        stream(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
