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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from common.backoff import backoff_delay
from common.events import Event
from web_ui.central_client import CentralClient
from web_ui.errors import WebError
from web_ui.fanout import BOARD_PANELS, Changelog, Hub, Renderer, Subscription, sse
from web_ui.feed import FeedItem, feed_item_from_audit
from web_ui.fleet import Query
from web_ui.kafka_edge import BrokerProbe, kafka_consumer
from web_ui.view import Board, Changes

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
            if self.broker:
                # Its events still arrive (a loaded Central answers its API last).
                return (
                    "Central is unreachable: showing the last known state, kept current by "
                    "the events that still arrive. Reconnecting…"
                )
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
        self._failures = 0  # snapshots failed in a row
        self._replay: list[Event] | None = None  # events applied while a snapshot is taken
        # Fan-out (web_ui/fanout.py): a change counter, when each CP and panel last
        # changed, and frames that wake the pages' stream threads a few times a second.
        self._frame_interval = frame_interval
        self._frames = threading.Condition(self._lock)
        self._frame = 0
        self._frame_seq = 0
        self._next_frame = 0.0
        self._log = Changelog()

    # ----------------------------------------------------------------- wiring
    def set_renderer(self, renderer: Renderer) -> None:
        self._log.renderer = renderer

    def start(self) -> LiveBoard:
        if self._log.renderer is None:
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
        self, kind: str = "board", query: Query | None = None, client: str = "", since: str = ""
    ) -> tuple[Subscription, bytes] | None:
        """A new page's subscription and its first message (the snapshot of its view).

        None when too many pages are open. An older stream of the same ``client`` (the
        page changed its filters) is closed, and ``since`` (the last ``mark`` that page
        was sent) spares it the panels it already has.
        """
        sub = Subscription(kind, query or Query(), client)
        with self._frames:
            if not self.hub.add(sub):
                return None
            self._frames.notify_all()  # wakes a replaced stream, so its thread ends
            first = self._log.snapshot(sub, self._board, self._status, self._frame, since)
            return sub, first

    def unsubscribe(self, sub: Subscription) -> None:
        self.hub.remove(sub)

    def next_message(self, sub: Subscription, timeout: float) -> bytes | None:
        """What changed for ``sub`` at the next frame; b"" if none came within ``timeout``.

        None once the page is closed or the board stops. However long the page took to
        come back for it, this is the state of now: nothing queues up meanwhile.
        """
        with self._frames:

            def ready() -> bool:
                if sub.closed or self._stopping.is_set() or sub.frame != self._frame:
                    return True
                return sub.due is not None and time.monotonic() >= sub.due  # a slow panel

            if not ready():
                # Until the next frame, or until a slow panel held back is due.
                wait = timeout if sub.due is None else min(timeout, sub.due - time.monotonic())
                self._frames.wait_for(ready, max(wait, 0.0))
            if sub.closed or self._stopping.is_set():
                return None
            if not ready():
                return b""
            return self._log.update(sub, self._board, self._status, self._frame)

    def flush(self) -> None:
        """Start a frame now (tests; the thread does it every ``frame_interval``)."""
        with self._frames:
            self._frame += 1
            self._frame_seq = self._log.seq
            self._next_frame = time.monotonic() + self._frame_interval
            self._frames.notify_all()

    # ----------------------------------------------------------------- the thread
    def _run(self) -> None:
        reads = threading.Thread(target=self._read_central, name="live-board-reads", daemon=True)
        try:
            if self._consumer_factory is not None:
                self._consumer = self._consumer_factory()
                self._prime(self._consumer)
            reads.start()
            while not self._stopping.is_set():
                try:
                    self._step()
                except Exception:  # the board must outlive any bad event or answer
                    log.exception("live board step failed")
                    self._stopping.wait(1.0)
        finally:
            if reads.is_alive():
                reads.join(5)
            if self._consumer is not None:
                self._consumer.close()

    def _read_central(self) -> None:
        """Health checks and snapshots, in a thread of their own.

        A loaded Central can take seconds to answer, and a snapshot of 10,000 CPs is a few
        megabytes: events keep being applied meanwhile, and those that arrive during a
        snapshot are applied again to it once it is in (see :meth:`resync`).
        """
        while not self._stopping.is_set():
            try:
                now = time.monotonic()
                if now >= self._next_health:
                    self._next_health = now + self._health_interval
                    self._check_health()
                if time.monotonic() >= self._next_snapshot:
                    self.resync()
            except Exception:
                log.exception("reading from Central failed")
                self._stopping.wait(1.0)
            self._stopping.wait(0.05)

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
        wait = min(0.2, self._frame_interval)
        if self._consumer is not None:
            self.apply(self._consumer.poll(wait))
        else:
            self._stopping.wait(wait)
        if self._log.seq != self._frame_seq and time.monotonic() >= self._next_frame:
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
        """Take the board again from Central; True if it answered.

        Events applied while the snapshot is on its way are kept and applied again to
        the new board (those it already includes are ignored by their time stamp), so
        none is lost by taking a snapshot while the stream flows.
        """
        with self._lock:
            self._replay = []
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
            with self._lock:
                self._replay = None
            self._set_status(central=False)
            # Try again soon, then less and less often: a loaded Central is not helped
            # by a snapshot of the whole fleet every second.
            self._failures += 1
            wait = backoff_delay(self._failures, first=1.0, cap=self._resync_interval)
            self._next_snapshot = time.monotonic() + wait
            self._ready.set()
            return False
        self._failures = 0
        with self._lock:
            feed = self._board.feed if audit is None else _feed_from_audit(audit)
            board = Board.from_snapshot(cps, drivers, weather, tickets, as_of, feed)
            for event in self._replay or ():
                board.apply(event)
            self._replay = None
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
            if self._replay is not None:
                self._replay.extend(events)  # a snapshot is on its way: apply them to it too
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
        self._log.record(changes)


def _feed_from_audit(audit: dict[str, Any]) -> list[FeedItem]:
    """Newest first, like the audit log's answer."""
    items = (feed_item_from_audit(entry) for entry in audit.get("entries") or [])
    return [item for item in items if item is not None]
