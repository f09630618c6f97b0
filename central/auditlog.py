"""Central's side of the audit chain: verify what was appended, sign and publish checkpoints.

Every ``interval`` seconds :class:`Checkpointer` verifies the entries appended since
its last look (a read, off the writer's turn), and, if the chain is sound and its head
moved, signs a checkpoint of the head: stored in the database and recorded in the
outbox for the Kafka topic ``evcharging.audit``, in the writer's transaction. On
start it reads the newest checkpoint published there, so a chain truncated while
Central was down is caught at the first check (docs/security.md, "Audit log").
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from sqlalchemy.orm import Session

from central.writer import DbWriter
from common.db import Database
from common.db.chain import ChainReport, ChainVerifier, Checkpoint, Mark
from common.db.models import AuditCheckpoint
from common.events import Event, EventType, record
from common.events.types import AUDIT_TOPIC

__all__ = ["Checkpointer", "latest_published"]

log = logging.getLogger(__name__)


class Checkpointer:
    """Signs a checkpoint whenever the verified head has moved."""

    def __init__(self, db: Database, writer: DbWriter, verifier: ChainVerifier) -> None:
        self._db = db
        self._writer = writer
        self.verifier = verifier
        self._signed: Mark | None = None
        self._broken = False

    async def tick(self) -> Checkpoint | None:
        """Verify, then sign the head if it moved; returns the new checkpoint, if any."""
        loop = asyncio.get_running_loop()
        report = await loop.run_in_executor(None, self._check)
        if not report.ok:
            if not self._broken:  # once: an operator's GET /api/audit shows it every time
                log.error(
                    "audit chain broken; no checkpoint signed", extra={"fields": report.to_dict()}
                )
            self._broken = True
            return None
        self._broken = False
        mark = self.verifier.mark
        if mark is None or mark[0] == 0 or mark == self._signed:
            return None
        checkpoint = Checkpoint.make(self.verifier.keys, mark)
        await self._writer.call(lambda session: store(session, checkpoint))
        self.verifier.saw(checkpoint)
        self._signed = mark
        return checkpoint

    def _check(self) -> ChainReport:
        with self._db.read() as session:
            return self.verifier.check(session)


def store(session: Session, checkpoint: Checkpoint) -> None:
    """Keep ``checkpoint`` in the database and send it to Kafka (through the outbox)."""
    session.add(
        AuditCheckpoint(
            entry_id=checkpoint.entry_id,
            hash=checkpoint.hash,
            ts=checkpoint.ts,
            key_id=checkpoint.key_id,
            signature=checkpoint.signature,
        )
    )
    record(
        session,
        Event(EventType.AUDIT_CHECKPOINT, "central", checkpoint.to_dict(), ts=checkpoint.ts),
        topic=AUDIT_TOPIC,
    )


def latest_published(bootstrap: str, timeout: float = 3.0) -> list[Checkpoint]:
    """The last message of each partition of ``evcharging.audit`` that is a checkpoint.

    Raises:
        BrokerUnavailable: the broker did not answer.
    """
    from confluent_kafka import Consumer, KafkaException
    from confluent_kafka.admin import AdminClient

    from common.events.kafka import (
        BrokerUnavailable,
        admin_config,
        consumer_config,
        describe_topic,
    )

    info = describe_topic(AdminClient(admin_config(bootstrap)), AUDIT_TOPIC, timeout=timeout)
    if info is None:
        return []
    try:
        return _last_of_each_partition(
            Consumer(consumer_config(bootstrap)), info.partitions, timeout
        )
    except KafkaException as exc:
        raise BrokerUnavailable(f"Kafka at {bootstrap}: {exc}") from None


def _last_of_each_partition(consumer: Any, partitions: int, timeout: float) -> list[Checkpoint]:
    from confluent_kafka import TopicPartition

    try:
        wanted = []
        for partition in range(partitions):
            tp = TopicPartition(AUDIT_TOPIC, partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
            if high > low:
                wanted.append(TopicPartition(AUDIT_TOPIC, partition, high - 1))
        consumer.assign(wanted)
        found: list[Checkpoint] = []
        for _ in wanted:
            message = consumer.poll(timeout)
            if message is None or message.error():
                continue
            try:
                found.append(Checkpoint.from_dict(json.loads(message.value() or b"")["data"]))
            except (ValueError, KeyError, TypeError):
                log.warning(
                    "malformed checkpoint ignored", extra={"fields": {"topic": AUDIT_TOPIC}}
                )
        return found
    finally:
        consumer.close()
