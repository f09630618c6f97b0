"""Events: the envelope, the transactional outbox, the Kafka relay and consumers."""

from common.events.consumer import Deduplicator, EventConsumer
from common.events.kafka import BrokerUnavailable, TopicError, ensure_topic
from common.events.outbox import record
from common.events.relay import OutboxRelay
from common.events.types import AUDITED, TOPIC, Event, EventDecodeError, EventType

__all__ = [
    "AUDITED",
    "TOPIC",
    "BrokerUnavailable",
    "Deduplicator",
    "Event",
    "EventConsumer",
    "EventDecodeError",
    "EventType",
    "OutboxRelay",
    "TopicError",
    "ensure_topic",
    "record",
]
