"""The outbox relay: publishes committed events to Kafka and marks them sent.

A cycle reads unsent rows in ``id`` order (one short transaction), produces them with
an idempotent producer, waits for the delivery reports, and marks the delivered rows
sent (a second short transaction). No transaction stays open while Kafka is slow. A
crash between delivery and marking publishes those rows again; consumers drop them by
``event_id``.

Several services run a relay against the same database. Only one cycle runs at a time
per database (a PostgreSQL advisory lock, or a lock file next to the SQLite file):
two relays publishing interleaved batches could put a CP's later event on the topic
before its earlier one.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple, Protocol, cast

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.exc import SQLAlchemyError

from common.backoff import Backoff
from common.db import Database
from common.db.models import OutboxRow, utcnow
from common.events.kafka import (
    BrokerUnavailable,
    TopicError,
    admin_config,
    ensure_topic,
    producer_config,
)

__all__ = ["OutboxRelay"]

log = logging.getLogger(__name__)

_PG_RELAY_LOCK = 7_411_002  # pg_advisory_lock key: one relay cycle at a time


class _Producer(Protocol):
    def produce(
        self, topic: str, value: bytes, key: bytes | None, on_delivery: Callable[..., None]
    ) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...
    def purge(self, in_queue: bool = ..., in_flight: bool = ..., blocking: bool = ...) -> None: ...


def _kafka_producer(settings: dict[str, Any]) -> _Producer:
    return cast(_Producer, Producer(settings))


class _Row(NamedTuple):
    id: int
    topic: str
    key: str | None
    payload: str


class _CycleLock:
    """Lets one relay cycle run at a time per database, across processes."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._path: Path | None = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self._path = Path(f"{engine.url.database}.relay-lock")

    @contextmanager
    def hold(self) -> Iterator[bool]:
        """Yield True if this relay may publish now, False if another one is at it."""
        if self._engine.dialect.name == "postgresql":
            with self._pg_lock() as held:
                yield held
        elif self._path is not None:
            with self._file_lock(self._path) as held:
                yield held
        else:
            yield True  # in-memory SQLite: one process, nothing to share

    @contextmanager
    def _pg_lock(self) -> Iterator[bool]:
        # A session-level lock on a connection kept for the cycle, so no transaction
        # stays open while we wait on Kafka. If the process dies, the lock goes with
        # its connection.
        with self._engine.connect() as conn:
            held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": _PG_RELAY_LOCK}))
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    try:
                        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_RELAY_LOCK})
                        conn.commit()
                    except SQLAlchemyError:
                        conn.invalidate()  # closing the connection releases the lock

    @staticmethod
    @contextmanager
    def _file_lock(path: Path) -> Iterator[bool]:
        with path.open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class OutboxRelay:
    """Publish outbox rows to Kafka, in order, until they are acknowledged.

    Nothing connects until the first :meth:`run_once`.

    Args:
        db: the database holding the outbox.
        bootstrap: ``host:port`` of the broker.
        batch: most rows published per cycle.
        poll_interval: seconds between looks at the outbox when it is idle.
        partitions: partition count for topics the relay has to create.
        keep_sent: how long sent rows stay before :meth:`purge_sent` removes them.
        clock: the current UTC time (``sent_at`` and purging).
        sleep: waits between retries during an outage; by default the stop event's wait.
        producer_factory: builds the producer from its settings (tests inject fakes).
        create_topics: create missing topics before producing (False for fakes).
    """

    min_backoff = 0.2
    max_backoff = 10.0
    flush_timeout = 12.0  # a little over message.timeout.ms: every report has come in
    connect_timeout = 3.0  # for creating topics, which doubles as a reachability probe
    purge_every = timedelta(minutes=10)

    def __init__(
        self,
        db: Database,
        bootstrap: str,
        *,
        batch: int = 500,
        poll_interval: float = 0.2,
        partitions: int = 3,
        keep_sent: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], object] | None = None,
        producer_factory: Callable[[dict[str, Any]], _Producer] | None = None,
        create_topics: bool = True,
    ) -> None:
        self.db = db
        self.bootstrap = bootstrap
        self.batch = batch
        self.poll_interval = poll_interval
        self.partitions = partitions
        self.keep_sent = keep_sent
        self._clock = clock
        self._sleep = sleep
        self._producer_factory = producer_factory or _kafka_producer
        self._create_topics = create_topics
        self._lock = _CycleLock(db.engine)
        self._producer: _Producer | None = None
        self._broker_lost = False  # set by librdkafka's error callback
        self._ready_topics: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._trouble: str | None = None  # the outage being reported, if any
        self._next_purge: datetime | None = None

    # -- one cycle ---------------------------------------------------------------

    def run_once(self) -> int:
        """Publish up to ``batch`` unsent rows; return how many were acknowledged.

        Raises:
            BrokerUnavailable: the broker could not be reached or did not acknowledge
                every row (the acknowledged ones are marked sent all the same).
            sqlalchemy.exc.SQLAlchemyError: the database failed.
        """
        with self._lock.hold() as ours:
            if not ours:
                return 0
            rows = self._claim()
            if not rows:
                return 0
            failures = self._publish(rows)
            sent = [row.id for row in rows if row.id not in failures]
            self._mark(sent, list(failures))
        if failures:
            self._drop_producer()
            reason = next(iter(failures.values()))
            raise BrokerUnavailable(f"{len(failures)} of {len(rows)} not delivered: {reason}")
        return len(sent)

    def _claim(self) -> list[_Row]:
        query = (
            select(OutboxRow.id, OutboxRow.topic, OutboxRow.key, OutboxRow.payload)
            .where(OutboxRow.sent_at.is_(None))
            .order_by(OutboxRow.id)
            .limit(self.batch)
        )
        with self.db.read() as session:
            return [_Row(*row) for row in session.execute(query)]

    def _publish(self, rows: list[_Row]) -> dict[int, str]:
        """Produce ``rows`` and wait for their reports; return ``{row id: error}``."""
        producer = self._connect({row.topic for row in rows})
        reports: dict[int, str | None] = {}

        def reporter(row_id: int) -> Callable[[KafkaError | None, Any], None]:
            def report(error: KafkaError | None, _message: Any) -> None:
                reports[row_id] = None if error is None else error.str()

            return report

        for row in rows:
            key = row.key.encode() if row.key is not None else None
            while True:
                try:
                    producer.produce(
                        row.topic, value=row.payload.encode(), key=key, on_delivery=reporter(row.id)
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain it
                    producer.poll(0.1)
        deadline = time.monotonic() + self.flush_timeout
        while producer.flush(0.1) > 0:
            if self._broker_lost or time.monotonic() > deadline:
                break
        failures = {
            row.id: reports.get(row.id) or "no delivery report"
            for row in rows
            if row.id not in reports or reports[row.id] is not None
        }
        return failures

    def _connect(self, topics: set[str]) -> _Producer:
        producer = self._producer
        if producer is not None:
            producer.poll(0)  # serve the error callback: did the broker go away?
            if self._broker_lost:
                self._drop_producer()
                producer = None
        if self._create_topics and not topics <= self._ready_topics:
            # Also a reachability probe: fails fast (BrokerUnavailable) during an outage.
            admin = AdminClient(admin_config(self.bootstrap))
            for topic in sorted(topics - self._ready_topics):
                try:
                    ensure_topic(
                        self.bootstrap, topic, self.partitions, self.connect_timeout, admin=admin
                    )
                except TopicError as exc:  # e.g. no permission: it may exist all the same
                    log.warning("cannot create topic", extra={"fields": {"reason": str(exc)}})
                self._ready_topics.add(topic)
        if producer is None:
            settings = producer_config(self.bootstrap, error_cb=self._on_client_error)
            producer = self._producer_factory(settings)
            self._producer = producer
        return producer

    def _on_client_error(self, error: KafkaError) -> None:
        # After a broker restart the idempotent producer's id is unknown to it and every
        # send would time out; a fresh producer is the cure.
        if error.fatal() or error.code() == KafkaError._ALL_BROKERS_DOWN:
            self._broker_lost = True

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        self._broker_lost = False
        self._ready_topics.clear()  # a restarted embedded broker has forgotten them
        if producer is not None:
            producer.purge(in_queue=True, in_flight=True, blocking=False)
            producer.poll(0)

    def _mark(self, sent: list[int], failed: list[int]) -> None:
        with self.db.transaction() as session:
            if sent:
                session.execute(
                    update(OutboxRow).where(OutboxRow.id.in_(sent)).values(sent_at=self._clock())
                )
            if failed:
                session.execute(
                    update(OutboxRow)
                    .where(OutboxRow.id.in_(failed))
                    .values(attempts=OutboxRow.attempts + 1)
                )

    # -- housekeeping ------------------------------------------------------------

    def pending(self) -> int:
        """How many rows wait to be published."""
        with self.db.read() as session:
            query = select(func.count()).select_from(OutboxRow).where(OutboxRow.sent_at.is_(None))
            return int(session.scalar(query) or 0)

    def purge_sent(self, older_than: timedelta) -> int:
        """Delete rows sent more than ``older_than`` ago; return how many."""
        cutoff = self._clock() - older_than
        with self.db.transaction() as session:
            result = session.execute(
                delete(OutboxRow).where(OutboxRow.sent_at.is_not(None), OutboxRow.sent_at < cutoff)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    def _maybe_purge(self) -> None:
        now = self._clock()
        if self._next_purge is None or now >= self._next_purge:
            self._next_purge = now + self.purge_every
            removed = self.purge_sent(self.keep_sent)
            if removed:
                log.info("purged sent outbox rows", extra={"fields": {"rows": removed}})

    # -- running -----------------------------------------------------------------

    def wake(self) -> None:
        """Look at the outbox now instead of at the next poll (call after a commit)."""
        self._wake.set()

    def run_forever(self, stop: threading.Event) -> None:
        """Publish until ``stop`` is set, backing off (0.2 s doubling to 10 s) in outages."""
        backoff = Backoff(first=self.min_backoff, cap=self.max_backoff)
        while not stop.is_set():
            try:
                published = self.run_once()
                self._maybe_purge()
            except BrokerUnavailable as exc:
                self._report_trouble("broker", str(exc))
            except SQLAlchemyError as exc:
                self._report_trouble("database", str(exc).splitlines()[0])
            except Exception:  # a bug: say so, keep the relay alive, retry later
                log.exception("outbox relay cycle failed")
                self._trouble = "bug"
            else:
                self._recovered()
                backoff.reset()
                if published < self.batch:
                    self._wake.wait(self.poll_interval)
                    self._wake.clear()
                continue
            delay = backoff.next()
            if self._sleep is not None:
                self._sleep(delay)
            else:
                stop.wait(delay)

    def _report_trouble(self, kind: str, reason: str) -> None:
        if self._trouble == kind:
            return  # one line per outage, not one per attempt
        self._trouble = kind
        try:
            waiting: int | str = self.pending()
        except SQLAlchemyError:
            waiting = "unknown"
        message = f"{kind} unreachable, {waiting} events waiting"
        log.warning(message, extra={"fields": {"bootstrap": self.bootstrap, "reason": reason}})

    def _recovered(self) -> None:
        if self._trouble is not None:
            log.info(
                "outbox relay resumed",
                extra={"fields": {"after": self._trouble, "bootstrap": self.bootstrap}},
            )
            self._trouble = None

    def start_thread(self, name: str = "outbox-relay") -> threading.Thread:
        """Run :meth:`run_forever` in a daemon thread until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the relay thread is already running")
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.run_forever, args=(self._stop,), name=name, daemon=True
        )
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 15) -> None:
        """Stop the thread (a cycle in progress finishes first) and drop the producer."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("outbox relay thread did not stop in time")
                return
            self._thread = None
        self._drop_producer()
