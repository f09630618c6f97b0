"""Events: the envelope, the transactional outbox, the Kafka relay and consumers."""

from common.events.outbox import record
from common.events.types import AUDITED, TOPIC, Event, EventDecodeError, EventType

__all__ = ["AUDITED", "TOPIC", "Event", "EventDecodeError", "EventType", "record"]
