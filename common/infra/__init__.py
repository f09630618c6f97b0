"""Infrastructure the services can run on their own: the embedded Kafka-compatible broker."""

from common.infra.broker import BrokerError, EmbeddedBroker, ensure_topic

__all__ = ["BrokerError", "EmbeddedBroker", "ensure_topic"]
