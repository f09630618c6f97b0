"""``GET /events``: the live feed, as Server-Sent Events.

The stream starts with a ``snapshot`` (the whole board), then sends ``tile``, ``panel``,
``ticket`` and ``status`` events as they happen, and a comment every few seconds so a
dead connection is noticed. The browser's ``EventSource`` reconnects by itself and gets
a fresh snapshot, so nothing is lost across a reconnect.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Response

from web_ui.deps import clients

__all__ = ["bp"]

bp = Blueprint("stream", __name__)

KEEPALIVE = 10.0  # seconds between comments on a quiet stream
RETRY_MS = 1500  # how soon a browser reconnects


@bp.get("/events")
def events() -> Response:
    live = clients().live
    sub = live.subscribe()
    if sub is None:
        return Response(
            "too many open pages\n",
            status=503,
            mimetype="text/plain",
            headers={"Retry-After": "5"},
        )

    def stream() -> Iterator[bytes]:
        try:
            yield f"retry: {RETRY_MS}\n\n".encode()
            while True:
                message = sub.get(KEEPALIVE)
                if message is None:
                    return  # closed: the server stops, or this page fell behind
                yield message or b": keep-alive\n\n"
        finally:
            live.unsubscribe(sub)

    return Response(
        stream(),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
