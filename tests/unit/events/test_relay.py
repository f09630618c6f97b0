"""The outbox relay against a fake producer and a real SQLite file: order, retries, outages."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from common.db import Database, open_database
from common.db.models import OutboxRow
from common.events import BrokerUnavailable, Event, EventType, OutboxRelay, record
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.clock import FakeClock

NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


class FakeError:
    """Stands in for confluent_kafka.KafkaError in delivery reports."""

    def __init__(self, text: str) -> None:
        self.text = text

    def str(self) -> str:
        return self.text


class FakeProducer:
    """Records what was produced; ``flush`` reports delivery, failing keys in ``fail_keys``."""

    def __init__(self, settings: dict[str, Any], fail_keys: set[str | None]) -> None:
        self.settings = settings
        self.fail_keys = fail_keys
        self.queue: list[tuple[str, bytes | None, bytes, Callable[..., None]]] = []
        self.delivered: list[tuple[str, str | None, dict[str, Any]]] = []
        self.purged = False
        self.on_flush: Callable[[], None] | None = None

    def produce(
        self, topic: str, value: bytes, key: bytes | None, on_delivery: Callable[..., None]
    ) -> None:
        self.queue.append((topic, key, value, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        if self.on_flush:
            self.on_flush()
        for topic, key, value, report in self.queue:
            text_key = key.decode() if key is not None else None
            if text_key in self.fail_keys:
                report(FakeError("Local: Message timed out"), None)
            else:
                self.delivered.append((topic, text_key, Event.from_json(value).data))
                report(None, None)
        self.queue.clear()
        return 0

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purged = True


class Harness:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.producers: list[FakeProducer] = []
        self.fail_keys: set[str | None] = set()

    def factory(self, settings: dict[str, Any]) -> FakeProducer:
        producer = FakeProducer(settings, self.fail_keys)
        self.producers.append(producer)
        return producer

    def relay(self, **kwargs: Any) -> OutboxRelay:
        kwargs.setdefault("clock", lambda: NOW)
        return OutboxRelay(
            self.db,
            "127.0.0.1:1",
            producer_factory=self.factory,
            create_topics=False,
            **kwargs,
        )

    def write(self, *keys: str) -> None:
        with self.db.transaction() as s:
            for i, key in enumerate(keys):
                record(s, Event(EventType.SESSION_PROGRESS, "central", {"i": i}, cp_id=key))

    def delivered(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        return [d for p in self.producers for d in p.delivered]

    def rows(self) -> list[OutboxRow]:
        with self.db.transaction() as s:
            return list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))


@pytest.fixture
def harness(sqlite_url: str) -> Iterator[Harness]:
    db = open_database(sqlite_url, audit_keys=TEST_AUDIT_KEYS)
    yield Harness(db)
    db.dispose()


def test_publishes_in_order_with_keys_and_marks_rows_sent(harness: Harness) -> None:
    relay = harness.relay()
    assert harness.producers == []  # nothing connects before the first cycle
    harness.write("CP1", "CP2", "CP1")
    assert relay.run_once() == 3
    assert harness.delivered() == [
        ("evcharging.events", "CP1", {"i": 0}),
        ("evcharging.events", "CP2", {"i": 1}),
        ("evcharging.events", "CP1", {"i": 2}),
    ]
    assert all(row.sent_at == NOW and row.attempts == 0 for row in harness.rows())
    assert relay.run_once() == 0
    settings = harness.producers[0].settings
    assert settings["enable.idempotence"] is True and settings["acks"] == "all"


def test_batches_are_bounded(harness: Harness) -> None:
    relay = harness.relay(batch=2)
    harness.write("A", "B", "C")
    assert relay.run_once() == 2
    assert relay.pending() == 1
    assert relay.run_once() == 1


def test_undelivered_rows_stay_unsent_count_attempts_and_get_a_new_producer(
    harness: Harness,
) -> None:
    relay = harness.relay()
    harness.write("CP1", "CP2", "CP1")
    harness.fail_keys.add("CP1")
    with pytest.raises(BrokerUnavailable, match="2 of 3 not delivered: Local: Message timed out"):
        relay.run_once()
    assert [(r.key, r.sent_at is not None, r.attempts) for r in harness.rows()] == [
        ("CP1", False, 1),
        ("CP2", True, 0),
        ("CP1", False, 1),
    ]
    assert harness.producers[0].purged
    harness.fail_keys.clear()
    assert relay.run_once() == 2
    assert len(harness.producers) == 2
    assert [d[2]["i"] for d in harness.producers[1].delivered] == [0, 2]


def test_an_outage_is_reported_once_and_retried_with_capped_backoff(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    stop = threading.Event()
    delays: list[float] = []

    def sleep(seconds: float) -> None:
        delays.append(seconds)
        if len(delays) == 9:
            harness.fail_keys.clear()  # the broker is back
        if len(delays) > 20:
            stop.set()  # safety net: never loop forever

    relay = harness.relay(sleep=sleep, poll_interval=0.01)
    harness.write("CP1", "CP1")
    harness.fail_keys.add("CP1")
    original = relay.run_once

    def run_once() -> int:
        published = original()
        if published:
            stop.set()
        return published

    relay.run_once = run_once  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO, logger="common.events.relay"):
        relay.run_forever(stop)
    assert delays == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["broker unreachable, 2 events waiting"]
    assert any(r.getMessage() == "outbox relay resumed" for r in caplog.records)
    assert all(r.sent_at is not None and r.attempts == 9 for r in harness.rows())


def test_purge_removes_only_rows_sent_long_enough_ago(harness: Harness) -> None:
    clock = FakeClock(wall_start=NOW)
    relay = harness.relay(clock=clock.wall)
    harness.write("OLD")
    relay.run_once()
    clock.advance(20 * 3600)
    harness.write("NEW", "UNSENT")
    harness.fail_keys.add("UNSENT")
    with pytest.raises(BrokerUnavailable):
        relay.run_once()
    clock.advance(5 * 3600)  # 25 h after the first write
    assert relay.purge_sent(timedelta(hours=24)) == 1
    assert [r.key for r in harness.rows()] == ["NEW", "UNSENT"]


def test_one_relay_cycle_at_a_time_per_database(harness: Harness, sqlite_url: str) -> None:
    """A second relay (another service) on the same file waits its turn: no interleaving."""
    other_db = open_database(sqlite_url, audit_keys=TEST_AUDIT_KEYS)
    other = OutboxRelay(
        other_db, "127.0.0.1:1", producer_factory=harness.factory, create_topics=False
    )
    relay = harness.relay()
    harness.write("CP1", "CP1")
    seen_by_other: list[int] = []
    relay.run_once()  # creates the first producer
    harness.write("CP1")
    harness.producers[0].on_flush = lambda: seen_by_other.append(other.run_once())
    assert relay.run_once() == 1
    assert seen_by_other == [0]
    harness.producers[0].on_flush = None
    harness.write("CP2")
    assert other.run_once() == 1
    other_db.dispose()


def test_wake_publishes_at_once_and_stop_ends_the_thread(harness: Harness) -> None:
    relay = harness.relay(poll_interval=30)
    thread = relay.start_thread()
    try:
        time.sleep(0.1)  # let the first (empty) cycle start its 30 s wait
        harness.write("CP1")
        relay.wake()
        deadline = time.monotonic() + 5
        while relay.pending() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert relay.pending() == 0
    finally:
        started = time.monotonic()
        relay.stop(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 1
