"""The live board: a snapshot from API_Central, kept current by events from Kafka.

One thread (:class:`LiveBoard`) owns the :class:`~web_ui.view.Board`. It assigns itself
every partition of ``evcharging.events`` at the end (no consumer group), then takes a
snapshot from API_Central, then applies each event and pushes the re-rendered parts to
every open page through a :class:`Hub` of Server-Sent-Events subscriptions.

Recovery. Central is checked every ``health_interval`` seconds and the broker too; while
either is down the pages show a banner. When Central comes back, or the broker does
(its memory may be empty, and events were missed meanwhile), the board is taken again
from Central. A full re-snapshot every ``resync_interval`` seconds also picks up what
no event announces (a driver disconnecting).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from common.events import Event
from web_ui.central_client import CentralClient
from web_ui.errors import WebError
from web_ui.fanout import Hub, Subscription, sse
from web_ui.fleet import Page, Query, select
from web_ui.kafka_edge import BrokerProbe, kafka_consumer
from web_ui.view import PANELS, Board, Changes, FeedItem, feed_item_from_audit

__all__ = [
    "BOARD_PANELS",
    "Consumer",
    "Hub",
    "LiveBoard",
    "Renderer",
    "Status",
    "Subscription",
    "sse",
]

log = logging.getLogger(__name__)

# The board page's panels: the view model's, plus the map (drawn from the summary).
BOARD_PANELS = (*PANELS, "map")
TICKETS_KEPT = 100  # tickets remembered for pages that have not been sent them yet


@dataclass(frozen=True)
class Status:
    """Whether the board is current: Central and the broker reachable.

    ``central`` is None until the first snapshot was tried; ``broker`` is None when no
    broker is configured.
    """

    central: bool | None = None
    broker: bool | None = None

    @property
    def ok(self) -> bool:
        return bool(self.central) and self.broker is not False

    @property
    def message(self) -> str:
        if self.central is None:
            return "Connecting to Central…"
        if not self.central:
            return "Central is unreachable: showing the last known state. Reconnecting…"
        if self.broker is False:
            return "The event stream is unreachable: live updates are paused. Reconnecting…"
        return ""

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "central": self.central,
            "broker": self.broker,
            "message": self.message,
        }


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


class Consumer(Protocol):
    """What :class:`LiveBoard` needs of :class:`~common.events.EventConsumer`."""

    @property
    def assigned_partitions(self) -> int: ...
    def poll(self, timeout: float = ..., max_events: int = ...) -> list[Event]: ...
    def close(self) -> None: ...


def _utcnow() -> datetime:
    return datetime.now(UTC)


class LiveBoard:
    """The board, the thread keeping it current, and the pages watching it.

    Args:
        central: API_Central client (reads only are used here).
        bootstrap: Kafka ``host:port``; None runs on re-snapshots alone.
        resync_interval: seconds between full snapshots while all is well.
        health_interval: seconds between checks of Central and the broker.
        max_subscribers: open pages at most (each holds a server thread).
        frame_interval: seconds between two updates of a page, at most; changes within
            are coalesced (the latest state of each CP shown).
        consumer_factory: builds the event consumer (tests inject one).
        broker_probe: returns whether the broker answers (tests inject one).
        now: wall clock (UTC) that stamps snapshots.
    """

    def __init__(
        self,
        central: CentralClient,
        *,
        bootstrap: str | None = None,
        resync_interval: float = 10.0,
        health_interval: float = 2.0,
        max_subscribers: int = 48,
        frame_interval: float = 0.25,
        consumer_factory: Callable[[], Consumer] | None = None,
        broker_probe: Callable[[], bool] | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._central = central
        self._bootstrap = bootstrap
        self._resync_interval = resync_interval
        self._health_interval = health_interval
        self._consumer_factory = consumer_factory or (
            (lambda: kafka_consumer(bootstrap)) if bootstrap else None
        )
        self._broker_probe = broker_probe or (BrokerProbe(bootstrap) if bootstrap else None)
        self._now = now
        self._renderer: Renderer | None = None
        self.hub = Hub(max_subscribers)
        self._lock = threading.RLock()
        self._board = Board()
        self._status = Status(broker=None if bootstrap is None else False)
        self._ready = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Consumer | None = None
        self._next_snapshot = 0.0
        self._missing_until = 0.0  # stop re-asking for CPs Central still lacks after this
        self._next_health = 0.0
        # Fan-out (web_ui/fanout.py): a change counter, when each CP and panel last
        # changed, and frames that wake the pages' stream threads a few times a second.
        self._frame_interval = frame_interval
        self._frames = threading.Condition(self._lock)
        self._frame = 0
        self._frame_seq = 0
        self._next_frame = 0.0
        self._seq = 0
        self._tile_seq: dict[str, int] = {}
        self._panel_seq: dict[str, int] = {}
        self._tickets: deque[tuple[int, dict[str, Any]]] = deque(maxlen=TICKETS_KEPT)
        self._panel_cache: dict[str, tuple[int, str]] = {}
        self._row_cache: dict[str, tuple[int, dict[str, Any]]] = {}

    # ----------------------------------------------------------------- wiring
    def set_renderer(self, renderer: Renderer) -> None:
        self._renderer = renderer

    def start(self) -> LiveBoard:
        if self._renderer is None:
            raise RuntimeError("set_renderer() before start()")
        self._thread = threading.Thread(target=self._run, name="live-board", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stopping.set()
        self.hub.close()
        with self._frames:
            self._frames.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the first snapshot has been tried; True if it was."""
        return self._ready.wait(timeout)

    # ----------------------------------------------------------------- reading
    @property
    def status(self) -> Status:
        return self._status

    def view(self) -> tuple[Board, Status]:
        """A copy of the board and the status (slow with thousands of CPs: see :meth:`read`)."""
        with self._lock:
            return self._board.copy(), self._status

    def read(self, fn: Callable[[Board], Any]) -> Any:
        """``fn(board)`` while no event changes it: render a page without copying the board."""
        with self._lock:
            return fn(self._board)

    def subscribe(
        self, kind: str = "board", query: Query | None = None, client: str = ""
    ) -> tuple[Subscription, bytes] | None:
        """A new page's subscription and its first message (the snapshot of its view).

        None when too many pages are open. An older stream of the same ``client`` (the
        page changed its filters) is closed.
        """
        sub = Subscription(kind, query or Query(), client)
        with self._frames:
            if not self.hub.add(sub):
                return None
            self._frames.notify_all()  # wakes a replaced stream, so its thread ends
            return sub, self._snapshot_message(sub)

    def unsubscribe(self, sub: Subscription) -> None:
        self.hub.remove(sub)

    def next_message(self, sub: Subscription, timeout: float) -> bytes | None:
        """What changed for ``sub`` at the next frame; b"" if none came within ``timeout``.

        None once the page is closed or the board stops. However long the page took to
        come back for it, this is the state of now: nothing queues up meanwhile.
        """
        with self._frames:
            self._frames.wait_for(
                lambda: sub.closed or self._stopping.is_set() or sub.frame != self._frame,
                timeout,
            )
            if sub.closed or self._stopping.is_set():
                return None
            if sub.frame == self._frame:
                return b""
            return self._update_message(sub)

    def flush(self) -> None:
        """Start a frame now (tests; the thread does it every ``frame_interval``)."""
        with self._frames:
            self._frame += 1
            self._frame_seq = self._seq
            self._next_frame = time.monotonic() + self._frame_interval
            self._frames.notify_all()

    # ----------------------------------------------------------------- the thread
    def _run(self) -> None:
        try:
            if self._consumer_factory is not None:
                self._consumer = self._consumer_factory()
                self._prime(self._consumer)
            while not self._stopping.is_set():
                try:
                    self._step()
                except Exception:  # the board must outlive any bad event or answer
                    log.exception("live board step failed")
                    self._stopping.wait(1.0)
        finally:
            if self._consumer is not None:
                self._consumer.close()

    def _prime(self, consumer: Consumer, timeout: float = 5.0) -> None:
        """Be assigned (at the end of the topic) before the first snapshot is taken."""
        deadline = time.monotonic() + timeout
        while consumer.assigned_partitions == 0 and time.monotonic() < deadline:
            consumer.poll(0.1)
            if self._stopping.is_set():
                return
        if consumer.assigned_partitions:
            self._set_status(broker=True)

    def _step(self) -> None:
        now = time.monotonic()
        if now >= self._next_health:
            self._next_health = now + self._health_interval
            self._check_health()
        if time.monotonic() >= self._next_snapshot:
            self.resync()
        wait = min(0.2, self._frame_interval)
        if self._consumer is not None:
            self.apply(self._consumer.poll(wait))
        else:
            self._stopping.wait(wait)
        if self._seq != self._frame_seq and time.monotonic() >= self._next_frame:
            self.flush()

    def _check_health(self) -> None:
        if self._broker_probe is not None:
            up = self._broker_probe()
            if up and self._status.broker is False:
                log.info("event stream reachable again; taking a new snapshot")
                self._next_snapshot = 0.0  # events were missed while it was away
            elif not up and self._status.broker:
                log.warning("event stream unreachable")
            self._set_status(broker=up)
        if self._status.central:
            try:
                self._central.health()
            except WebError as exc:
                log.warning("Central unreachable", extra={"fields": {"reason": str(exc)}})
                self._set_status(central=False)
                self._next_snapshot = 0.0

    def resync(self) -> bool:
        """Take the board again from Central; True if it answered."""
        as_of = self._now()
        try:
            cps = self._central.chargepoints()
            drivers = self._central.drivers()
            weather = self._central.weather()
            tickets = self._central.sessions({"status": "ended", "limit": 10})
            first = not self._ready.is_set()
            audit = self._central.audit({"limit": 200}) if first else None
        except WebError as exc:
            if self._status.central is not False:
                log.warning("snapshot failed", extra={"fields": {"reason": str(exc)}})
            self._set_status(central=False)
            self._next_snapshot = time.monotonic() + min(1.0, self._resync_interval)
            self._ready.set()
            return False
        with self._lock:
            feed = self._board.feed if audit is None else _feed_from_audit(audit)
            board = Board.from_snapshot(cps, drivers, weather, tickets, as_of, feed)
            board.keep_reasons(self._board)
            # Central picks up new registrations every few seconds: a CP an event named
            # may not be in this snapshot yet, so keep asking for it, briefly.
            board.missing = self._board.missing - {str(cp.get("id")) for cp in cps}
            if board.missing and time.monotonic() > self._missing_until:
                board.missing = set()  # named by events, never known to Central: give up
            if not board.missing:
                self._missing_until = 0.0
            changes = board.changes_since(self._board)
            self._board = board
            self._publish(changes)
        if self._status.central is not True:
            log.info("snapshot taken", extra={"fields": {"chargepoints": len(cps)}})
        self._set_status(central=True)
        soon = 0.5 if board.missing else self._resync_interval
        self._next_snapshot = time.monotonic() + soon
        self._ready.set()
        return True

    def apply(self, events: list[Event]) -> None:
        """Fold events into the board and push what changed to every page."""
        if not events:
            return
        with self._lock:
            changes = Changes()
            for event in events:
                changes = changes | self._board.apply(event)
            self._publish(changes)
            if self._board.missing:
                # A CP registered since the snapshot: take a new one soon (not per event).
                now = time.monotonic()
                if not self._missing_until:
                    self._missing_until = now + 10.0
                self._next_snapshot = min(self._next_snapshot, now + 0.2)

    # ----------------------------------------------------------------- fan-out
    def _set_status(self, **changes: bool | None) -> None:
        with self._lock:
            status = Status(
                central=changes.get("central", self._status.central),
                broker=changes.get("broker", self._status.broker),
            )
            if status == self._status:
                return
            self._status = status
            self.flush()  # a banner is shown at once, not at the next frame

    def _publish(self, changes: Changes) -> None:
        """Remember what changed; pages are sent it at the next frame."""
        if not changes:
            return
        self._seq += 1
        for cp_id in changes.tiles:
            self._tile_seq[cp_id] = self._seq
        panels = set(changes.panels)
        if panels & {"summary", "weather"}:
            panels |= {"summary", "map"}  # counts per place, alerts
        for name in panels:
            self._panel_seq[name] = self._seq
        for ticket in changes.tickets:
            self._tickets.append((self._seq, ticket))

    def _panel(self, name: str) -> str:
        """A panel as of now, rendered once per change whatever the number of pages."""
        assert self._renderer is not None
        seq = self._panel_seq.get(name, 0)
        cached = self._panel_cache.get(name)
        if cached is None or cached[0] != seq:
            cached = self._panel_cache[name] = (seq, self._renderer.panel(self._board, name))
        return cached[1]

    def _row(self, cp_id: str, html: bool = True) -> dict[str, Any]:
        tile = self._board.tiles.get(cp_id)
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
            assert self._renderer is not None
            row["html"] = self._renderer.tile(self._board, cp_id)
            cached = self._row_cache[cp_id] = (seq, row)
        return cached[1]

    def _listing(self, sub: Subscription, page: Page) -> dict[str, Any]:
        assert self._renderer is not None
        sub.ids, sub.total, sub.page = page.ids, page.total, page.page
        return {
            "html": self._renderer.listing(self._board, page),
            "rows": [self._row(cp_id, html=False) for cp_id in page.ids],
            "total": page.total,
            "page": page.page,
        }

    def _sent(self, sub: Subscription) -> None:
        sub.frame, sub.seq, sub.status = self._frame, self._seq, self._status
        sub.ticket_seq = self._seq

    def _snapshot_message(self, sub: Subscription) -> bytes:
        """Everything ``sub``'s page shows (the first message, and after falling behind)."""
        data: dict[str, Any] = {"t": _millis(), "status": self._status.to_json()}
        if sub.kind == "board":
            data["panels"] = {name: self._panel(name) for name in BOARD_PANELS}
            data["list"] = self._listing(sub, select(self._board, sub.query))
        elif sub.kind == "operator":
            data["rows"] = [self._row(cp_id, html=False) for cp_id in sorted(self._board.tiles)]
        self._sent(sub)
        return sse("snapshot", data)

    def _update_message(self, sub: Subscription) -> bytes:
        """What changed for ``sub`` since it was last sent: the latest state only."""
        out = b""
        if sub.status != self._status:
            out += sse("status", self._status.to_json())
        if sub.seq == self._seq:
            self._sent(sub)
            return out
        data: dict[str, Any] = {"t": _millis()}
        if sub.kind == "board":
            data["panels"] = {
                name: self._panel(name)
                for name in BOARD_PANELS
                if self._panel_seq.get(name, 0) > sub.seq
            }
            page = select(self._board, sub.query)
            if (page.ids, page.total, page.page) != (sub.ids, sub.total, sub.page):
                data["list"] = self._listing(sub, page)
            else:
                data["rows"] = [
                    self._row(cp_id) for cp_id in page.ids if self._tile_seq.get(cp_id, 0) > sub.seq
                ]
        elif sub.kind == "operator":
            data["rows"] = [
                self._row(cp_id, html=False)
                for cp_id, seq in self._tile_seq.items()
                if seq > sub.seq
            ]
        tickets = [ticket for seq, ticket in self._tickets if seq > sub.ticket_seq]
        self._sent(sub)
        if sub.kind == "revenue":
            return out + b"".join(sse("ticket", ticket) for ticket in tickets)
        return out + sse("update", data)


def _millis() -> int:
    """The server's clock, for a page to tell how far behind it is."""
    return int(time.time() * 1000)


def _feed_from_audit(audit: dict[str, Any]) -> list[FeedItem]:
    """Newest first, like the audit log's answer."""
    items = (feed_item_from_audit(entry) for entry in audit.get("entries") or [])
    return [item for item in items if item is not None]
