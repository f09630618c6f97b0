"""The transactional outbox: an event is stored with the change it describes.

Call :func:`record` inside the same session/transaction as the state change. If the
transaction commits, the event will reach Kafka (the relay retries until it does);
if it rolls back, the event never existed. Audited event types are also appended
to the hash-chained audit log in that same transaction.

Inside :func:`common.db.batch.collecting` (Central's writer batches) the events of the
whole batch are written at its end: one multi-row INSERT into the outbox and one into
the audit chain, in the order they were recorded.
"""

from __future__ import annotations

from sqlalchemy import insert
from sqlalchemy.orm import Session

from common.db import audit, batch
from common.db.models import OutboxRow
from common.events.types import AUDITED, TOPIC, Event

__all__ = ["record"]


def record(session: Session, event: Event, *, topic: str = TOPIC) -> None:
    """Add ``event`` to the outbox (and the audit log when its type is audited)."""
    batch.later(session, _write, (event, topic))


def _write(session: Session, events: list[tuple[Event, str]]) -> None:
    session.execute(
        insert(OutboxRow),
        [
            {
                "event_id": event.event_id,
                "topic": topic,
                "key": event.key,
                "payload": event.to_json(),
                "created_at": event.ts,
            }
            for event, topic in events
        ],
    )
    audit.append(
        session,
        [
            audit.Entry(
                actor=event.actor or event.source,
                action=str(event.type),
                params=audit.params_json(event.data),
                source_ip=event.source_ip,
                cp_id=event.cp_id,
                event_id=event.event_id,
                ts=event.ts,
            )
            for event, _ in events
            if event.type in AUDITED
        ],
    )
