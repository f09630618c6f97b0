"""Events end to end on SQLite and PostgreSQL: outbox → relay → embedded broker → consumer."""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from common.db import Database, open_database
from common.db.models import OutboxRow
from common.events import Event, EventType, OutboxRelay, record
from common.infra import EmbeddedBroker
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.broker import EventCollector, wait_until


def _now_ms() -> datetime:
    """Event times travel with millisecond precision; use such times to compare whole events."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)
    yield database
    database.dispose()


def _sent_ids(db: Database) -> set[str]:
    with db.transaction() as s:
        return set(s.scalars(select(OutboxRow.event_id).where(OutboxRow.sent_at.is_not(None))))


def _order_by_key(events: list[Event]) -> dict[str | None, list[int]]:
    order: dict[str | None, list[int]] = defaultdict(list)
    for event in events:
        order[event.key].append(event.data["n"])
    return dict(order)


def _outage_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "common.events.relay" and r.levelno == logging.WARNING
    ]


def test_recorded_events_are_published_and_consumed_intact_in_order_per_key(
    db: Database, broker: EmbeddedBroker
) -> None:
    written: list[Event] = []
    with db.transaction() as s:  # several events in one transaction, every field set
        for n in range(3):
            event = Event(
                EventType.SESSION_ENDED,
                "central",
                {"n": n, "kwh": "7.250", "ticket": {"total_eur": "2.54", "lines": [1, 2]}},
                cp_id="CP-A",
                driver_id="D-1",
                session_id=f"S-{n}",
                actor="central",
                source_ip="10.0.0.9",
                ts=_now_ms(),
            )
            record(s, event)
            written.append(event)
    for n in range(3, 40):  # and one transaction per event, interleaving three keys
        with db.transaction() as s:
            key = ("CP-A", "CP-B", None)[n % 3]
            driver = "D-2" if key is None else None
            event = Event(
                EventType.CP_STATE_CHANGED,
                "central",
                {"n": n},
                cp_id=key,
                ts=_now_ms(),
                driver_id=driver,
            )
            record(s, event)
            written.append(event)
    with pytest.raises(RuntimeError), db.transaction() as s:
        record(s, Event(EventType.CP_STATE_CHANGED, "central", {"n": -1}, cp_id="CP-B"))
        raise RuntimeError("rolled back: this event never existed")
    with db.transaction() as s:  # after the rolled-back one, same key: arrives after it would
        sentinel = Event(
            EventType.CP_STATE_CHANGED, "central", {"n": 99}, cp_id="CP-B", ts=_now_ms()
        )
        record(s, sentinel)
        written.append(sentinel)

    relay = OutboxRelay(db, broker.bootstrap)
    with EventCollector(broker.bootstrap) as collector:
        wait_until(lambda: relay.run_once() == 0 and relay.pending() == 0, 20, "an empty outbox")
        collector.wait_for_ids([e.event_id for e in written], timeout=20)
        relay.stop()
        mine = {e.event_id for e in written}
        received = [e for e in collector.events() if e.event_id in mine]

    by_id = {e.event_id: e for e in received}
    assert len(received) == len(written)
    assert all(by_id[w.event_id] == w for w in written)  # every field intact
    assert -1 not in [e.data.get("n") for e in collector.events()]  # shared broker: others too
    assert _order_by_key(received) == _order_by_key(written)
    with db.transaction() as s:
        rows = s.scalars(select(OutboxRow)).all()
        assert len(rows) == len(written)
        assert all(r.sent_at is not None and r.attempts == 0 for r in rows)


def test_a_broker_outage_loses_nothing_and_duplicates_are_dropped(
    db: Database, fresh_broker: EmbeddedBroker, caplog: pytest.LogCaptureFixture
) -> None:
    """Writers keep writing through a broker stop and restart; every event arrives once.

    The embedded broker keeps messages in memory, so what it held is lost on the stop:
    the test lets the consumer catch up before stopping it, as a real consumer would have
    long before. Rows published just before the stop are then marked unsent again, as if
    the relay had crashed before marking them: they are published twice, and the
    consumer's de-duplicator must drop the second copy.
    """
    caplog.set_level(logging.INFO, logger="common.events.relay")
    total, keys = 200, ["CP1", "CP2", "CP3", "CP4", "CP5"]
    written: list[Event] = []
    writer_error: list[BaseException] = []
    relay = OutboxRelay(db, fresh_broker.bootstrap, poll_interval=0.05)

    def write() -> None:
        try:
            for n in range(total):
                event = Event(EventType.SESSION_PROGRESS, "central", {"n": n}, cp_id=keys[n % 5])
                with db.transaction() as s:
                    record(s, event)
                written.append(event)
                relay.wake()
                time.sleep(0.02)
        except BaseException as exc:  # reported by the main thread
            writer_error.append(exc)

    writer = threading.Thread(target=write, name="writer", daemon=True)
    with EventCollector(fresh_broker.bootstrap) as collector:
        relay.start_thread()
        writer.start()
        wait_until(lambda: len(written) >= 60, 15, "60 events written")

        relay.stop()  # let the consumer catch up with everything published so far
        sent = _sent_ids(db)
        collector.wait_for_ids(sent, timeout=15)
        with db.transaction() as s:  # "crash before marking": these go out a second time
            replay = s.scalars(
                select(OutboxRow.id)
                .where(OutboxRow.sent_at.is_not(None))
                .order_by(OutboxRow.id.desc())
                .limit(10)
            ).all()
            s.execute(update(OutboxRow).where(OutboxRow.id.in_(replay)).values(sent_at=None))

        fresh_broker.stop()  # SIGINT; the writer goes on writing
        relay.start_thread()
        at_stop = len(written)
        wait_until(lambda: _outage_lines(caplog), 15, "the relay to report the outage")
        wait_until(lambda: len(written) >= at_stop + 50, 15, "50 events written during the outage")
        assert relay.pending() >= 50
        fresh_broker.restart()

        writer.join(30)
        assert not writer.is_alive() and not writer_error, writer_error
        wait_until(lambda: relay.pending() == 0, 30, lambda: f"{relay.pending()} unsent rows")
        collector.wait_for_ids([e.event_id for e in written], timeout=30)
        relay.stop()
        received = collector.events()

    ids = [e.event_id for e in received]
    assert len(ids) == len(set(ids)), "a duplicate got past the de-duplicator"
    assert set(ids) == {e.event_id for e in written}
    assert collector.dedup.duplicates >= len(replay) == 10
    assert _order_by_key(received) == _order_by_key(written)
    outage_lines = _outage_lines(caplog)
    assert len(outage_lines) == 1, outage_lines
    assert outage_lines[0].startswith("broker unreachable, ")
    assert any(r.getMessage() == "outbox relay resumed" for r in caplog.records)


def test_a_running_relay_recovers_from_a_broker_restart_promptly(
    db: Database, fresh_broker: EmbeddedBroker
) -> None:
    """The relay's producer outlives the broker; what is written meanwhile still arrives.

    A restarted broker no longer knows the idempotent producer, which would make every
    send time out; the relay must notice the lost connection and start a new producer.
    """

    def write(count: int, start: int) -> list[Event]:
        events = [
            Event(EventType.CP_STATE_CHANGED, "central", {"n": n}, cp_id=f"CP{n % 3}")
            for n in range(start, start + count)
        ]
        for event in events:
            with db.transaction() as s:
                record(s, event)
        relay.wake()
        return events

    relay = OutboxRelay(db, fresh_broker.bootstrap, poll_interval=0.05)
    relay.start_thread()
    with EventCollector(fresh_broker.bootstrap) as collector:
        before = write(20, 0)
        collector.wait_for_ids([e.event_id for e in before], timeout=15)
        fresh_broker.stop()
        during = write(20, 20)
        time.sleep(0.5)
        fresh_broker.restart()
        restarted = time.monotonic()
        after = write(20, 40)
        collector.wait_for_ids([e.event_id for e in during + after], timeout=20)
        recovery = time.monotonic() - restarted
        relay.stop()
        received = collector.events()
    assert recovery < 8, f"took {recovery:.1f} s after the restart"
    assert _order_by_key(received) == _order_by_key(before + during + after)
