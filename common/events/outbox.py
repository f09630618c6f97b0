"""The transactional outbox: an event is stored with the change it describes.

Call :func:`record` inside the same session/transaction as the state change. If the
transaction commits, the event will reach Kafka (the relay retries until it does);
if it rolls back, the event never existed. Audited event types are also appended
to the hash-chained audit log in that same transaction.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from common.db import audit
from common.db.models import OutboxRow
from common.events.types import AUDITED, TOPIC, Event

__all__ = ["record"]


def record(session: Session, event: Event, *, topic: str = TOPIC) -> OutboxRow:
    """Add ``event`` to the outbox (and the audit log when its type is audited)."""
    row = OutboxRow(
        event_id=event.event_id,
        topic=topic,
        key=event.key,
        payload=event.to_json(),
        created_at=event.ts,
    )
    session.add(row)
    if event.type in AUDITED:
        audit.append(
            session,
            actor=event.actor or event.source,
            action=str(event.type),
            params=event.data,
            source_ip=event.source_ip,
            cp_id=event.cp_id,
            event_id=event.event_id,
            ts=event.ts,
        )
    return row
