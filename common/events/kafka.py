"""The Kafka edge: client settings, topic creation, and errors translated from librdkafka.

Every Kafka client in the project is built from the settings here, so they agree on
time-outs and back-off, and librdkafka's own log lines (one per failed reconnect) go
to Python logging at DEBUG instead of flooding stderr during a broker outage.

EVChargingError
 ├── BrokerUnavailable   the broker did not answer or acknowledge in time (retriable)
 └── TopicError          the broker answered but refused a topic operation
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient, NewTopic

from common.errors import EVChargingError
from common.events.types import TOPIC

__all__ = [
    "BrokerUnavailable",
    "TopicError",
    "TopicInfo",
    "admin_config",
    "consumer_config",
    "describe_topic",
    "ensure_topic",
    "producer_config",
]

log = logging.getLogger(__name__)
_rdkafka_log = logging.getLogger(f"{__name__}.librdkafka")

# Error codes that mean "nobody answered", as opposed to "the broker said no".
_UNREACHABLE = {
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._MSG_TIMED_OUT,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
}


class BrokerUnavailable(EVChargingError):
    """The broker could not be reached or did not acknowledge in time; try again later."""

    retriable = True


class TopicError(EVChargingError):
    """The broker answered but refused a topic operation (bad partition count, ACLs...)."""

    retriable = False


class _DebugLog:
    """Receives librdkafka's log calls (``log(level, fmt, *args)``) and demotes them.

    The relay and consumers report outages themselves, once; librdkafka would log an
    ERROR line per reconnect attempt.
    """

    def log(self, _level: int, msg: str, *args: Any) -> None:
        _rdkafka_log.debug(msg, *args)


def _common(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "logger": _DebugLog(),
        # Reconnect quickly after an outage, but do not hammer a broker that is down.
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 2000,
        "socket.connection.setup.timeout.ms": 5000,
        "socket.keepalive.enable": True,
    }


def producer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Settings for an idempotent producer: no duplicates or reordering from retries."""
    config = _common(bootstrap) | {
        "client.id": "evcharging-relay",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.timeout.ms": 10_000,
        "request.timeout.ms": 5_000,
        # Topics are created on purpose, with our partition count; an auto-created
        # topic would get the broker's default count and move keys to other partitions.
        "allow.auto.create.topics": False,
    }
    return config | overrides


def consumer_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Settings for a broadcast consumer: ``assign()``, no group join, no commits."""
    config = _common(bootstrap) | {
        "client.id": "evcharging-consumer",
        # librdkafka insists on a group id even when partitions are assigned by hand;
        # a random one keeps consumers from ever sharing state.
        "group.id": f"evcharging-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
        "topic.metadata.refresh.interval.ms": 5_000,
        "fetch.wait.max.ms": 100,
    }
    return config | overrides


def admin_config(bootstrap: str, **overrides: Any) -> dict[str, Any]:
    """Settings for an ``AdminClient``."""
    return _common(bootstrap) | {"client.id": "evcharging-admin"} | overrides


def _kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def ensure_topic(
    bootstrap: str,
    topic: str = TOPIC,
    partitions: int = 3,
    timeout: float = 10,
    *,
    admin: AdminClient | None = None,
) -> bool:
    """Create ``topic`` unless it exists; works on Apache Kafka and on the embedded broker.

    Args:
        bootstrap: ``host:port`` of the broker.
        topic: name of the topic.
        partitions: partition count used when the topic is created.
        timeout: seconds to wait for the broker.
        admin: an existing client to reuse; one is made (and dropped) otherwise.

    Returns:
        True if this call created the topic, False if it already existed.

    Raises:
        BrokerUnavailable: the broker did not answer within ``timeout``.
        TopicError: the broker refused to create the topic.
    """
    client = admin or AdminClient(admin_config(bootstrap))
    futures = client.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=-1)],
        request_timeout=timeout,
        operation_timeout=timeout,
    )
    try:
        futures[topic].result(timeout=timeout + 1)
    except KafkaException as exc:
        error = _kafka_error(exc)
        if error is not None and error.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False
        if error is None or error.code() in _UNREACHABLE:
            raise BrokerUnavailable(f"Kafka at {bootstrap} did not answer: {exc}") from None
        raise TopicError(f"cannot create topic {topic!r} on {bootstrap}: {error.str()}") from None
    except TimeoutError:
        raise BrokerUnavailable(f"Kafka at {bootstrap} did not answer in {timeout} s") from None
    log.info("topic created", extra={"fields": {"topic": topic, "partitions": partitions}})
    return True


class TopicInfo(tuple[str, int]):
    """``(topic_id, partition_count)``: a new id means the topic was deleted and recreated."""

    __slots__ = ()

    def __new__(cls, topic_id: str, partitions: int) -> TopicInfo:
        return super().__new__(cls, (topic_id, partitions))

    @property
    def topic_id(self) -> str:
        return self[0]

    @property
    def partitions(self) -> int:
        return self[1]


def describe_topic(admin: AdminClient, topic: str, timeout: float = 2) -> TopicInfo | None:
    """The topic's id and partition count, or None if the topic does not exist.

    Raises:
        BrokerUnavailable: the broker did not answer within ``timeout``.
    """
    futures = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)
    try:
        description = futures[topic].result(timeout=timeout + 1)
    except KafkaException as exc:
        error = _kafka_error(exc)
        if error is not None and error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
            return None
        raise BrokerUnavailable(f"cannot describe topic {topic!r}: {exc}") from None
    except TimeoutError:
        raise BrokerUnavailable(f"cannot describe topic {topic!r}: no answer") from None
    return TopicInfo(str(description.topic_id), len(description.partitions))
