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

import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from common.events import Event
from web_ui.central_client import CentralClient
from web_ui.errors import WebError
from web_ui.view import PANELS, Board, Changes, FeedItem, feed_item_from_audit

__all__ = [
    "Consumer",
    "Hub",
    "LiveBoard",
    "Renderer",
    "Status",
    "Subscription",
    "sse",
]

log = logging.getLogger(__name__)


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

    def panel(self, board: Board, name: str) -> str: ...


class Consumer(Protocol):
    """What :class:`LiveBoard` needs of :class:`~common.events.EventConsumer`."""

    @property
    def assigned_partitions(self) -> int: ...
    def poll(self, timeout: float = ..., max_events: int = ...) -> list[Event]: ...
    def close(self) -> None: ...


def sse(event: str, data: Any) -> bytes:
    """One Server-Sent Event; ``data`` as one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


class Subscription:
    """One open page's queue of pre-encoded events.

    A page that stops reading (its queue is full) is closed; its browser reconnects and
    starts again from a snapshot.
    """

    def __init__(self, capacity: int = 1000) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(capacity)
        self.closed = False

    def put(self, message: bytes) -> None:
        if self.closed:
            return
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.close()

    def get(self, timeout: float) -> bytes | None:
        """The next message; b"" if none came within ``timeout``; None once closed."""
        if self.closed and self._queue.empty():
            return None
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None if self.closed else b""

    def close(self) -> None:
        self.closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)  # wake the reader


class Hub:
    """The open pages, each with its :class:`Subscription`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._subs: set[Subscription] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._subs)

    def add(self, sub: Subscription) -> bool:
        with self._lock:
            if len(self._subs) >= self.limit:
                return False
            self._subs.add(sub)
            return True

    def remove(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)
        sub.close()

    def publish(self, message: bytes) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.put(message)
            if sub.closed:
                self.remove(sub)

    def close(self) -> None:
        with self._lock:
            subs, self._subs = list(self._subs), set()
        for sub in subs:
            sub.close()


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
        consumer_factory: Callable[[], Consumer] | None = None,
        broker_probe: Callable[[], bool] | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._central = central
        self._bootstrap = bootstrap
        self._resync_interval = resync_interval
        self._health_interval = health_interval
        self._consumer_factory = consumer_factory or (
            (lambda: _kafka_consumer(bootstrap)) if bootstrap else None
        )
        self._broker_probe = broker_probe or (_BrokerProbe(bootstrap) if bootstrap else None)
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
        """A copy of the board and the status, for rendering a page."""
        with self._lock:
            return self._board.copy(), self._status

    def subscribe(self) -> Subscription | None:
        """A new page's subscription, starting with a snapshot; None if too many are open."""
        sub = Subscription()
        with self._lock:  # no update can slip between the snapshot and the subscription
            if not self.hub.add(sub):
                return None
            sub.put(self._snapshot_message())
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self.hub.remove(sub)

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
        if self._consumer is not None:
            self.apply(self._consumer.poll(0.2))
        else:
            self._stopping.wait(0.2)

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
            weather = self._central.weather()
            # Drivers, tickets and the audit log are API_Central's operator reads: without
            # the token the board is the public one (no drivers, no tickets, no feed).
            private = self._central.can_write
            drivers = self._central.drivers() if private else []
            tickets = self._central.sessions({"status": "ended", "limit": 10}) if private else []
            first = not self._ready.is_set()
            audit = self._central.audit({"limit": 200}) if first and private else None
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
            self.hub.publish(sse("status", status.to_json()))

    def _publish(self, changes: Changes) -> None:
        if not changes or self._renderer is None:
            return
        for cp_id in sorted(changes.tiles):
            self.hub.publish(sse("tile", self._tile(cp_id)))
        for name in PANELS:
            if name in changes.panels:
                html = self._renderer.panel(self._board, name)
                self.hub.publish(sse("panel", {"name": name, "html": html}))
        for ticket in changes.tickets:
            self.hub.publish(sse("ticket", ticket))

    def _tile(self, cp_id: str) -> dict[str, Any]:
        assert self._renderer is not None
        tile = self._board.tiles.get(cp_id)
        return {
            "id": cp_id,
            "state": tile.state if tile else None,
            "label": tile.label if tile else None,
            "html": self._renderer.tile(self._board, cp_id),
        }

    def _snapshot_message(self) -> bytes:
        assert self._renderer is not None
        board = self._board
        return sse(
            "snapshot",
            {
                "tiles": [self._tile(t.id) for t in board.visible_tiles()],
                "panels": {name: self._renderer.panel(board, name) for name in PANELS},
                "status": self._status.to_json(),
            },
        )


def _feed_from_audit(audit: dict[str, Any]) -> list[FeedItem]:
    """Newest first, like the audit log's answer."""
    items = (feed_item_from_audit(entry) for entry in audit.get("entries") or [])
    return [item for item in items if item is not None]


def _kafka_consumer(bootstrap: str) -> Consumer:
    from common.events import EventConsumer

    return EventConsumer(
        bootstrap, from_beginning=False, check_interval=1.0, consumer_factory=_EndPinnedConsumer
    )


class _EndPinnedConsumer:
    """A Kafka consumer whose "from the end" is the end at ``assign()`` time.

    librdkafka resolves ``OFFSET_END`` lazily, when it first fetches; an event published
    between our snapshot and that moment would be skipped. Asking for the high-water
    marks at once pins the start before the snapshot is taken.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        from confluent_kafka import Consumer as KafkaConsumer

        self._consumer = KafkaConsumer(settings)

    def assign(self, partitions: list[Any]) -> None:
        from confluent_kafka import OFFSET_END, KafkaException, TopicPartition

        pinned = []
        for tp in partitions:
            if tp.offset == OFFSET_END:
                try:
                    _, high = self._consumer.get_watermark_offsets(tp, timeout=5, cached=False)
                    tp = TopicPartition(tp.topic, tp.partition, high)
                except KafkaException:
                    pass  # the broker is slow: keep the lazy end, a resync repairs any gap
            pinned.append(tp)
        self._consumer.assign(pinned)

    def incremental_assign(self, partitions: list[Any]) -> None:
        self._consumer.incremental_assign(partitions)

    def poll(self, timeout: float = -1) -> Any:
        return self._consumer.poll(timeout)

    def close(self) -> None:
        self._consumer.close()


class _BrokerProbe:
    """Answers whether the broker responds to a metadata request within a second."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._admin: Any = None  # made on first use: nothing connects at construction

    def __call__(self) -> bool:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        from common.events.kafka import admin_config

        if self._admin is None:
            self._admin = AdminClient(admin_config(self._bootstrap))
        try:
            self._admin.list_topics(timeout=1.0)
        except KafkaException:
            return False
        return True
