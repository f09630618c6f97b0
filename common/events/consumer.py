"""Reading events back: a broadcast consumer that survives broker restarts and de-duplicates.

The relay may publish an event twice (it crashed between delivery and marking the row
sent, or the broker lost its memory and everything unsent is published again), so
consumers drop repeats by ``event_id`` with a :class:`Deduplicator`.

:class:`EventConsumer` assigns itself every partition instead of joining a consumer
group (group joins are slow on the embedded broker, and every service wants every
event). It watches the topic's id: when the broker restarts with memory storage the
topic comes back with a new id and offsets start again at 0, so the consumer rewinds
to the beginning rather than reading on from its old offset and skipping new events.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition
from confluent_kafka.admin import AdminClient

from common.events.kafka import (
    BrokerUnavailable,
    TopicInfo,
    admin_config,
    consumer_config,
    describe_topic,
)
from common.events.types import TOPIC, Event, EventDecodeError

__all__ = ["Deduplicator", "EventConsumer"]

log = logging.getLogger(__name__)


class Deduplicator:
    """Remembers the last ``capacity`` event ids, forgetting the least recently seen.

    Args:
        capacity: how many ids to keep; a repeat older than that passes as new.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be greater than 0")
        self.capacity = capacity
        self.duplicates = 0  # how many repeats were caught, for tests and metrics
        self._ids: OrderedDict[str, None] = OrderedDict()

    def seen(self, event_id: str) -> bool:
        """True if ``event_id`` was seen before (a duplicate); otherwise remember it."""
        if event_id in self._ids:
            self._ids.move_to_end(event_id)
            self.duplicates += 1
            return True
        self._ids[event_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids


class _KafkaConsumer(Protocol):
    def assign(self, partitions: list[TopicPartition]) -> None: ...
    def incremental_assign(self, partitions: list[TopicPartition]) -> None: ...
    def poll(self, timeout: float = ...) -> Any: ...
    def close(self) -> None: ...


# Errors meaning the connection to a broker dropped: it may come back as a new broker.
_CONNECTION_LOST = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT}


class EventConsumer:
    """Poll decoded, de-duplicated events from every partition of a topic.

    Nothing connects until the first :meth:`poll`. Within a partition (so for one key)
    events come in topic order, also across a restart of the embedded broker: after a
    lost connection nothing more is returned until the topic has been checked, so
    events from a restarted broker are never read from the stale offset.

    Args:
        bootstrap: ``host:port`` of the broker.
        topic: the topic to read.
        from_beginning: read the whole topic (True) or only what arrives from now on.
        dedup: the de-duplicator; share one to de-duplicate across consumers.
        check_interval: seconds between checks that the topic still is the same one.
        consumer_factory, admin_factory: build the Kafka clients (tests inject fakes).
        monotonic: the clock that schedules topic checks.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str = TOPIC,
        *,
        from_beginning: bool = True,
        dedup: Deduplicator | None = None,
        check_interval: float = 1.0,
        consumer_factory: Callable[[dict[str, Any]], _KafkaConsumer] | None = None,
        admin_factory: Callable[[dict[str, Any]], AdminClient] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.dedup = dedup if dedup is not None else Deduplicator()
        self._from_beginning = from_beginning
        self._check_interval = check_interval
        self._consumer_factory = consumer_factory or Consumer
        self._admin_factory = admin_factory or AdminClient
        self._monotonic = monotonic
        self._consumer: _KafkaConsumer | None = None
        self._admin: AdminClient | None = None
        self._topic: TopicInfo | None = None  # what we are assigned to
        self._next_check = 0.0
        self._suspect = False  # the connection dropped since the topic was last checked
        self._held: Any = None  # a message that arrived after the drop, until checked
        self._closed = False

    @property
    def assigned_partitions(self) -> int:
        """How many partitions are assigned (0 until the topic has been seen)."""
        return self._topic.partitions if self._topic else 0

    def poll(self, timeout: float = 1.0, max_events: int = 500) -> list[Event]:
        """Wait up to ``timeout`` seconds for events; return the new ones, oldest first.

        Malformed values are logged and skipped; broker trouble is logged, never raised.
        """
        if self._closed:
            raise RuntimeError("poll() on a closed EventConsumer")
        consumer = self._connect()
        if self._suspect or self._monotonic() >= self._next_check:
            answered = self._check_topic(consumer)
            self._next_check = self._monotonic() + self._check_interval
            if answered:
                self._suspect = False
        events: list[Event] = []
        if self._suspect or self._topic is None or not self._topic.topic_id:
            # No topic yet, or it is gone, or it may have been recreated: reading now
            # could start a new topic at an old offset.
            time.sleep(min(timeout, self._check_interval))
            return events
        message, self._held = self._held, None
        # One message per poll(): librdkafka serves the error callback in queue order,
        # so we know which messages were queued after a lost connection.
        deadline = time.monotonic() + timeout
        while len(events) < max_events:
            if message is None:
                wait = max(0.0, deadline - time.monotonic()) if not events else 0.0
                message = consumer.poll(wait)
                if message is None:
                    break
                if self._suspect:
                    self._held = message  # maybe from a restarted broker: check first
                    break
            event = self._decode(message)
            message = None
            if event is not None and not self.dedup.seen(event.event_id):
                events.append(event)
        return events

    def _decode(self, message: Any) -> Event | None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                self._next_check = 0.0  # look at the topic on the next poll
            if error.code() != KafkaError._PARTITION_EOF:
                log.debug("consumer error", extra={"fields": {"error": error.str()}})
            return None
        try:
            return Event.from_json(message.value())
        except EventDecodeError as exc:
            log.warning(
                "skipped a malformed event",
                extra={
                    "fields": {
                        "partition": message.partition(),
                        "offset": message.offset(),
                        "reason": str(exc),
                    }
                },
            )
            return None

    def _connect(self) -> _KafkaConsumer:
        if self._consumer is None:
            settings = consumer_config(self.bootstrap, error_cb=self._on_client_error)
            self._consumer = self._consumer_factory(settings)
            self._admin = self._admin_factory(admin_config(self.bootstrap))
        return self._consumer

    def _on_client_error(self, error: KafkaError) -> None:
        if error.code() in _CONNECTION_LOST:
            self._suspect = True
        log.debug("consumer client error", extra={"fields": {"error": error.str()}})

    def _check_topic(self, consumer: _KafkaConsumer) -> bool:
        """(Re)assign partitions when the topic appears, grows, or was recreated.

        Returns:
            False if the broker did not answer (nothing changed), else True.
        """
        assert self._admin is not None
        try:
            info = describe_topic(self._admin, self.topic, timeout=min(2.0, self._check_interval))
        except BrokerUnavailable:
            return False  # librdkafka reconnects by itself; the topic is checked again later
        if info is None:
            if self._topic is not None and self._topic.topic_id:
                # Gone (broker restarting): whatever comes back is a new topic, read it all.
                log.info("topic disappeared", extra={"fields": {"topic": self.topic}})
                self._topic = TopicInfo("", self._topic.partitions)
                self._held = None
            return True
        old = self._topic
        if old is None or old.topic_id != info.topic_id:
            start = OFFSET_BEGINNING if old is not None or self._from_beginning else OFFSET_END
            consumer.assign([TopicPartition(self.topic, p, start) for p in range(info.partitions)])
            self._held = None  # read again from the start, if it was in the new topic
            if old is not None:
                log.info(
                    "topic recreated, reading it again from the start",
                    extra={"fields": {"topic": self.topic, "partitions": info.partitions}},
                )
        elif info.partitions > old.partitions:
            added = range(old.partitions, info.partitions)
            consumer.incremental_assign(
                [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in added]
            )
        self._topic = info
        return True

    def close(self) -> None:
        """Leave the broker; safe to call twice."""
        self._closed = True
        consumer, self._consumer, self._admin = self._consumer, None, None
        if consumer is not None:
            consumer.close()

    def __enter__(self) -> EventConsumer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
