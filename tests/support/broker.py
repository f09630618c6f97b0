"""Test helpers around the embedded broker: bounded waits and a background event collector."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from common.events import Deduplicator, Event, EventConsumer
from common.infra import EmbeddedBroker

T = TypeVar("T")

__all__ = ["EventCollector", "start_broker", "wait_until"]


def start_broker(directory: Path, partitions: int = 3) -> EmbeddedBroker:
    """A started broker on a free port, logging to ``directory/tansu.log``."""
    directory.mkdir(parents=True, exist_ok=True)
    return EmbeddedBroker(log_path=directory / "tansu.log", partitions=partitions).start()


def wait_until(
    condition: Callable[[], T],
    timeout: float,
    what: str | Callable[[], str],
    interval: float = 0.05,
) -> T:
    """Poll ``condition`` until it is truthy and return that value; fail the test saying
    ``what`` if it never is."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            detail = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {detail}")
        time.sleep(interval)
    return value


class EventCollector:
    """An :class:`EventConsumer` polled by a thread, so it keeps reading while a test acts.

    Args:
        bootstrap: ``host:port`` of the broker.
        dedup: the consumer's de-duplicator (inspect ``dedup.duplicates`` afterwards).
    """

    def __init__(self, bootstrap: str, dedup: Deduplicator | None = None) -> None:
        self.dedup = dedup or Deduplicator()
        self.consumer = EventConsumer(bootstrap, dedup=self.dedup, check_interval=0.5)
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="event-collector", daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self.consumer.poll(0.2)
                with self._lock:
                    self._events.extend(batch)
        except BaseException as exc:  # surfaced to the test by events()/wait_for_ids()
            self.error = exc

    def start(self) -> EventCollector:
        self._thread.start()
        return self

    def events(self) -> list[Event]:
        """Everything received so far, in arrival order."""
        if self.error is not None:
            raise AssertionError(f"the collector thread died: {self.error!r}")
        with self._lock:
            return list(self._events)

    def ids(self) -> list[str]:
        return [event.event_id for event in self.events()]

    def wait_for_ids(self, expected: Iterable[str], timeout: float) -> None:
        """Wait until every id in ``expected`` has been received."""
        wanted = set(expected)

        def missing() -> set[str]:
            return wanted - set(self.ids())

        wait_until(
            lambda: not missing(), timeout, lambda: f"{len(missing())} of {len(wanted)} events"
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)
        self.consumer.close()

    def __enter__(self) -> EventCollector:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
