"""The open pages of the live board: what each one shows, and what it was last sent.

A page does not get a queue. The live thread bumps a *frame* a few times a second when
the board changed; each page's stream thread wakes on the frame, compares the board with
what that page was last sent (:class:`Subscription`), and sends one message with the
latest state of what it shows. A page that reads slowly (its socket is full, its stream
thread blocked on a write) simply skips frames: when it catches up it gets the state of
now, never a backlog, so the server's memory per page stays the size of one page.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

from web_ui.fleet import Query

__all__ = ["KINDS", "Hub", "Subscription", "sse"]

# What a stream carries, by the page that opened it.
KINDS = (
    "board",  # summary, map, panels, and the rows of its view's page
    "operator",  # every CP's state (id, state, label), for the operator's table
    "revenue",  # tickets only: the page fetches itself again when one arrives
)


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event; ``data`` as one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@dataclass(eq=False)
class Subscription:
    """One open page: its view, and what it has been sent (to send only what changed)."""

    kind: str = "board"
    query: Query = field(default_factory=Query)
    client: str = ""  # the page's own random id: a page that reopens its stream replaces it
    closed: bool = False
    frame: int = -1  # the last frame it was sent
    seq: int = -1  # the board's change counter when it was last sent
    ids: tuple[str, ...] = ()  # the rows it shows
    total: int = -1
    page: int = 0
    status: Any = None
    sent_panels: dict[str, int] = field(default_factory=dict)  # panel -> seq sent
    ticket_seq: int = -1

    def close(self) -> None:
        self.closed = True


class Hub:
    """The open pages, at most ``limit`` (each holds a server thread)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._subs: dict[int, Subscription] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._subs)

    def __iter__(self) -> Any:
        with self._lock:
            return iter(list(self._subs.values()))

    def add(self, sub: Subscription) -> bool:
        """Add ``sub``; an older stream of the same page is closed. False when full."""
        with self._lock:
            if sub.client:
                for old in list(self._subs.values()):
                    if old.client == sub.client:
                        old.close()  # its thread ends at its next wake-up
                        del self._subs[id(old)]
            if len(self._subs) >= self.limit:
                return False
            self._subs[id(sub)] = sub
            return True

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.pop(id(sub), None)
        sub.close()

    def close(self) -> None:
        with self._lock:
            subs, self._subs = list(self._subs.values()), {}
        for sub in subs:
            sub.close()
