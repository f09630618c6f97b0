"""The consumer's bookkeeping against fake Kafka clients: assignment, restarts, bad values."""

from __future__ import annotations

import logging
from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, KafkaException

from common.events import Deduplicator, Event, EventConsumer, EventType


class FakeAdmin:
    """Answers describe_topics from ``topic`` (None: no such topic)."""

    def __init__(self) -> None:
        self.topic: tuple[str, int] | None = None
        self.unreachable = False

    def describe_topics(self, topics: Any, request_timeout: float) -> dict[str, Future[Any]]:
        future: Future[Any] = Future()
        if self.unreachable:
            future.set_exception(KafkaException(KafkaError(KafkaError._TIMED_OUT)))
        elif self.topic is None:
            future.set_exception(KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)))
        else:
            topic_id, count = self.topic
            future.set_result(SimpleNamespace(topic_id=topic_id, partitions=[0] * count))
        return {"evcharging.events": future}


class FakeMessage:
    def __init__(self, value: bytes, offset: int = 0) -> None:
        self._value = value
        self._offset = offset

    def error(self) -> None:
        return None

    def value(self) -> bytes:
        return self._value

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset


class FakeConsumer:
    """Serves ``inbox`` one item per poll(); a KafkaError item goes to the error callback."""

    def __init__(self) -> None:
        self.assignments: list[list[tuple[int, int]]] = []
        self.added: list[list[tuple[int, int]]] = []
        self.inbox: list[FakeMessage | KafkaError] = []
        self.settings: dict[str, Any] = {}
        self.closed = False

    def assign(self, partitions: list[Any]) -> None:
        self.assignments.append([(p.partition, p.offset) for p in partitions])

    def incremental_assign(self, partitions: list[Any]) -> None:
        self.added.append([(p.partition, p.offset) for p in partitions])

    def poll(self, timeout: float = -1) -> FakeMessage | None:
        while self.inbox:
            item = self.inbox.pop(0)
            if isinstance(item, KafkaError):
                self.settings["error_cb"](item)  # served in queue order, as librdkafka does
                continue
            return item
        return None

    def close(self) -> None:
        self.closed = True


class Fakes:
    def __init__(self) -> None:
        self.admin = FakeAdmin()
        self.kafka = FakeConsumer()
        self.now = 0.0

    def make_consumer(self, settings: dict[str, Any]) -> FakeConsumer:
        self.kafka.settings = settings
        return self.kafka

    def consumer(self, **kwargs: Any) -> EventConsumer:
        kwargs.setdefault("check_interval", 1.0)
        return EventConsumer(
            "127.0.0.1:1",
            consumer_factory=self.make_consumer,
            admin_factory=lambda _settings: self.admin,  # type: ignore[arg-type,return-value]
            monotonic=lambda: self.now,
            **kwargs,
        )


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


def test_assigns_every_partition_from_the_beginning(fakes: Fakes) -> None:
    fakes.admin.topic = ("id-1", 3)
    consumer = fakes.consumer()
    assert consumer.poll(0) == []
    assert fakes.kafka.assignments == [
        [(0, OFFSET_BEGINNING), (1, OFFSET_BEGINNING), (2, OFFSET_BEGINNING)]
    ]


def test_from_now_on_starts_at_the_end(fakes: Fakes) -> None:
    fakes.admin.topic = ("id-1", 2)
    fakes.consumer(from_beginning=False).poll(0)
    assert fakes.kafka.assignments == [[(0, OFFSET_END), (1, OFFSET_END)]]


def test_waits_for_a_missing_topic_then_assigns(fakes: Fakes) -> None:
    consumer = fakes.consumer(check_interval=0.01)
    assert consumer.poll(0) == [] and consumer.assigned_partitions == 0
    fakes.admin.topic = ("id-1", 3)
    fakes.now += 1
    consumer.poll(0)
    assert consumer.assigned_partitions == 3 and len(fakes.kafka.assignments) == 1


def test_a_recreated_topic_is_read_again_from_the_start(fakes: Fakes) -> None:
    fakes.admin.topic = ("id-1", 3)
    consumer = fakes.consumer(from_beginning=False)
    consumer.poll(0)
    fakes.now += 0.5
    consumer.poll(0)  # not yet time to look at the topic again
    assert len(fakes.kafka.assignments) == 1
    fakes.admin.topic = None  # broker restarting
    fakes.now += 1
    consumer.poll(0)
    fakes.admin.topic = ("id-2", 3)
    fakes.now += 1
    consumer.poll(0)
    assert fakes.kafka.assignments[-1] == [(p, OFFSET_BEGINNING) for p in range(3)]
    fakes.now += 1
    consumer.poll(0)
    assert len(fakes.kafka.assignments) == 2  # same id: left alone


def test_new_partitions_are_added_from_the_start(fakes: Fakes) -> None:
    fakes.admin.topic = ("id-1", 2)
    consumer = fakes.consumer()
    consumer.poll(0)
    fakes.admin.topic = ("id-1", 4)
    fakes.now += 1
    consumer.poll(0)
    assert fakes.kafka.added == [[(2, OFFSET_BEGINNING), (3, OFFSET_BEGINNING)]]
    assert consumer.assigned_partitions == 4


def test_malformed_values_are_skipped_and_duplicates_dropped(
    fakes: Fakes, caplog: pytest.LogCaptureFixture
) -> None:
    fakes.admin.topic = ("id-1", 1)
    dedup = Deduplicator()
    consumer = fakes.consumer(dedup=dedup)
    first = Event(EventType.CP_REGISTERED, "registry", cp_id="CP1")
    second = Event(EventType.CP_DEREGISTERED, "registry", cp_id="CP1")
    fakes.kafka.inbox = [
        FakeMessage(first.to_json().encode(), 0),
        FakeMessage(b"{broken", 1),
        FakeMessage(first.to_json().encode(), 2),
        FakeMessage(second.to_json().encode(), 3),
    ]
    with caplog.at_level(logging.WARNING):
        events = consumer.poll(0)
    assert [e.event_id for e in events] == [first.event_id, second.event_id]
    assert dedup.duplicates == 1
    assert [r.getMessage() for r in caplog.records] == ["skipped a malformed event"]
    consumer.close()
    assert fakes.kafka.closed
    with pytest.raises(RuntimeError, match="closed"):
        consumer.poll(0)


def _message(n: int) -> FakeMessage:
    event = Event(EventType.CP_STATE_CHANGED, "central", {"n": n}, cp_id="CP1")
    return FakeMessage(event.to_json().encode(), n)


def _numbers(events: list[Event]) -> list[int]:
    return [event.data["n"] for event in events]


def test_after_a_lost_connection_nothing_is_read_until_the_topic_is_checked(
    fakes: Fakes,
) -> None:
    fakes.admin.topic = ("id-1", 1)
    consumer = fakes.consumer()
    consumer.poll(0)
    down = KafkaError(KafkaError._ALL_BROKERS_DOWN)
    fakes.kafka.inbox = [_message(0), down, _message(1), _message(2)]
    assert _numbers(consumer.poll(0)) == [0]  # 1 was queued after the drop: held back
    fakes.admin.unreachable = True  # still down
    assert consumer.poll(0) == []
    fakes.admin.unreachable = False
    fakes.admin.topic = ("id-1", 1)  # back, same topic: a network blip, carry on
    assert _numbers(consumer.poll(0)) == [1, 2]
    assert len(fakes.kafka.assignments) == 1


def test_a_message_held_across_a_restart_is_dropped_and_the_topic_reread(fakes: Fakes) -> None:
    fakes.admin.topic = ("id-1", 2)
    consumer = fakes.consumer()
    consumer.poll(0)
    fakes.kafka.inbox = [KafkaError(KafkaError._TRANSPORT), _message(7)]  # 7: stale offset
    assert consumer.poll(0) == []
    fakes.admin.topic = ("id-2", 2)  # restarted: new topic, offsets from 0 again
    fakes.kafka.inbox = [_message(1)]
    assert _numbers(consumer.poll(0)) == [1]
    assert fakes.kafka.assignments[-1] == [(0, OFFSET_BEGINNING), (1, OFFSET_BEGINNING)]
