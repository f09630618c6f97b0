"""The live board's Kafka edge: a consumer pinned at the end of the topic, a broker probe.

Kept apart from :mod:`web_ui.live` so that the board's logic reads without librdkafka's
details; both are made on first use, nothing connects at import.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BrokerProbe", "EndPinnedConsumer", "kafka_consumer"]


def kafka_consumer(bootstrap: str) -> Any:
    from common.events import EventConsumer

    return EventConsumer(
        bootstrap, from_beginning=False, check_interval=1.0, consumer_factory=EndPinnedConsumer
    )


class EndPinnedConsumer:
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


class BrokerProbe:
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
