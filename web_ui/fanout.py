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
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from web_ui.fleet import Page, Query, select
from web_ui.view import PANELS, Board, Changes

__all__ = ["BOARD_PANELS", "KINDS", "Changelog", "Hub", "Renderer", "Subscription", "sse"]

# The board page's panels: the view model's, plus the map (drawn from the summary).
BOARD_PANELS = (*PANELS, "map")
TICKETS_KEPT = 100  # tickets remembered for pages that have not been sent them yet
# Panels a page is sent at most once per so many seconds. The map (an SVG and a table)
# changes with every count: redrawn four times a second it is most of what a browser
# does under 1,000 changes/s, for nothing a person can read; the summary's counts stay
# at every frame.
SLOW_PANELS = {"map": 1.0}

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
    panel_seqs: dict[str, int] = field(default_factory=dict)  # panel -> seq sent
    slow_at: dict[str, float] = field(default_factory=dict)  # slow panel -> when sent
    due: float | None = None  # when a slow panel held back is to be sent (monotonic)
    complete: int = -1  # the change counter when it last had every panel up to date
    ticket_seq: int = -1

    def close(self) -> None:
        self.closed = True


class Renderer(Protocol):
    """Turns parts of the board into HTML fragments (the same ones the pages include)."""

    def tile(self, board: Board, cp_id: str) -> str:
        """The tile of ``cp_id``, or "" if the board does not show it."""
        ...

    def panel(self, board: Board, name: str) -> str:
        """A panel of :data:`BOARD_PANELS`."""
        ...

    def listing(self, board: Board, page: Page) -> str:
        """The list of a view's page: its count, its tiles, its pager."""
        ...


class Changelog:
    """When each CP and panel last changed, and the messages that bring a page up to date.

    A change counter (``seq``) goes up with each batch of changes; each CP and panel
    remembers the value of its last change, each :class:`Subscription` the value it was
    last sent. Panels and tiles are rendered once per change, whatever the number of
    pages. The caller holds the board's lock around every call.
    """

    def __init__(self) -> None:
        self.renderer: Renderer | None = None
        self.epoch = secrets.token_hex(4)  # a mark of an earlier process is not ours
        self.seq = 0
        self._tile_seq: dict[str, int] = {}
        self._panel_seq: dict[str, int] = {}
        self._tickets: deque[tuple[int, dict[str, Any]]] = deque(maxlen=TICKETS_KEPT)
        self._panel_cache: dict[str, tuple[int, str]] = {}
        self._row_cache: dict[str, tuple[int, dict[str, Any]]] = {}
        # Views selected as of ``_pages_of`` (change counter, board): pages showing the
        # same view (most show the default one) share one filter-and-sort of the fleet
        # per change, not one each.
        self._pages: dict[Query, Page] = {}
        self._pages_of: tuple[int, Board | None] = (-1, None)

    def record(self, changes: Changes) -> None:
        """Remember what changed; pages are sent it at the next frame."""
        if not changes:
            return
        self.seq += 1
        for cp_id in changes.tiles:
            self._tile_seq[cp_id] = self.seq
        panels = set(changes.panels)
        if panels & {"summary", "weather"}:
            panels |= {"summary", "map"}  # counts per place, alerts
        for name in panels:
            self._panel_seq[name] = self.seq
        for ticket in changes.tickets:
            self._tickets.append((self.seq, ticket))

    def _panel(self, board: Board, name: str) -> str:
        """A panel as of now, rendered once per change whatever the number of pages."""
        assert self.renderer is not None
        seq = self._panel_seq.get(name, 0)
        cached = self._panel_cache.get(name)
        if cached is None or cached[0] != seq:
            cached = self._panel_cache[name] = (seq, self.renderer.panel(board, name))
        return cached[1]

    def _row(self, board: Board, cp_id: str, html: bool = True) -> dict[str, Any]:
        tile = board.tiles.get(cp_id)
        row: dict[str, Any] = {
            "id": cp_id,
            "state": tile.state if tile else None,
            "label": tile.label if tile else None,
        }
        if not html:
            return row
        seq = self._tile_seq.get(cp_id, 0)
        cached = self._row_cache.get(cp_id)
        if cached is None or cached[0] != seq:
            assert self.renderer is not None
            row["html"] = self.renderer.tile(board, cp_id)
            cached = self._row_cache[cp_id] = (seq, row)
        return cached[1]

    def _select(self, board: Board, query: Query) -> Page:
        """``select(board, query)``, once per change of the board whatever the pages."""
        if self._pages_of[0] != self.seq or self._pages_of[1] is not board:
            self._pages, self._pages_of = {}, (self.seq, board)
        page = self._pages.get(query)
        if page is None:
            page = self._pages[query] = select(board, query)
        return page

    def _listing(self, board: Board, sub: Subscription, page: Page) -> dict[str, Any]:
        assert self.renderer is not None
        sub.ids, sub.total, sub.page = page.ids, page.total, page.page
        return {
            "html": self.renderer.listing(board, page),
            "rows": [self._row(board, cp_id, html=False) for cp_id in page.ids],
            "total": page.total,
            "page": page.page,
        }

    def _sent(self, sub: Subscription, status: Any, frame: int) -> None:
        sub.frame, sub.seq, sub.status = frame, self.seq, status
        sub.ticket_seq = self.seq

    def _panels(self, sub: Subscription, board: Board, now: float) -> dict[str, str]:
        """The panels ``sub`` has not been sent since they changed (slow ones when due)."""
        out, sub.due = {}, None
        for name in BOARD_PANELS:
            seq = self._panel_seq.get(name, 0)
            if seq <= sub.panel_seqs.get(name, -1):
                continue
            every = SLOW_PANELS.get(name)
            if every is not None:
                due = sub.slow_at.get(name, -every) + every
                if now < due:
                    sub.due = due if sub.due is None else min(sub.due, due)
                    continue
                sub.slow_at[name] = now
            out[name] = self._panel(board, name)
            sub.panel_seqs[name] = seq
        if sub.due is None:
            sub.complete = self.seq
        return out

    def _mark(self, sub: Subscription) -> str:
        """What ``sub``'s page has every panel as of, for it to say so later (``since``).

        Not simply now: a slow panel held back is older than the rest.
        """
        return f"{self.epoch}.{sub.complete}"

    def snapshot(
        self, sub: Subscription, board: Board, status: Any, frame: int, since: str = ""
    ) -> bytes:
        """Everything ``sub``'s page shows (the first message, and after falling behind).

        ``since`` (a mark the page was sent) spares a page that only changes its
        view the panels it already has: they are left out unless they changed since.
        """
        data: dict[str, Any] = {"t": _millis(), "status": status.to_json()}
        if sub.kind == "board":
            now = time.monotonic()
            sub.panel_seqs, sub.slow_at, sub.complete = {}, {}, -1
            epoch, _, seq = since.partition(".")
            if epoch == self.epoch and seq.isdigit() and int(seq) <= self.seq:
                sub.panel_seqs, sub.complete = dict.fromkeys(BOARD_PANELS, int(seq)), int(seq)
                sub.slow_at = dict.fromkeys(SLOW_PANELS, now)  # it has a recent one
            data["panels"] = self._panels(sub, board, now)
            data["mark"] = self._mark(sub)
            data["list"] = self._listing(board, sub, self._select(board, sub.query))
        elif sub.kind == "operator":
            data["rows"] = [self._row(board, cp_id, html=False) for cp_id in sorted(board.tiles)]
        self._sent(sub, status, frame)
        return sse("snapshot", data)

    def update(self, sub: Subscription, board: Board, status: Any, frame: int) -> bytes:
        """What changed for ``sub`` since it was last sent: the latest state only."""
        out = b""
        if sub.status != status:
            out += sse("status", status.to_json())
        now = time.monotonic()
        if sub.seq == self.seq and (sub.due is None or now < sub.due):
            self._sent(sub, status, frame)
            return out
        data: dict[str, Any] = {"t": _millis()}
        if sub.kind == "board":
            data["panels"] = self._panels(sub, board, now)
            data["mark"] = self._mark(sub)
            page = self._select(board, sub.query)
            if (page.ids, page.total, page.page) != (sub.ids, sub.total, sub.page):
                data["list"] = self._listing(board, sub, page)
            else:
                data["rows"] = [
                    self._row(board, cp_id)
                    for cp_id in page.ids
                    if self._tile_seq.get(cp_id, 0) > sub.seq
                ]
        elif sub.kind == "operator":
            data["rows"] = [
                self._row(board, cp_id, html=False)
                for cp_id, seq in self._tile_seq.items()
                if seq > sub.seq
            ]
        tickets = [ticket for seq, ticket in self._tickets if seq > sub.ticket_seq]
        self._sent(sub, status, frame)
        if sub.kind == "revenue":
            return out + b"".join(sse("ticket", ticket) for ticket in tickets)
        return out + sse("update", data)


def _millis() -> int:
    """The server's clock, for a page to tell how far behind it is."""
    return int(time.time() * 1000)


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
