"""The SQL of several Centrals (PostgreSQL): leases, ownership, reaping, messages.

Plain functions of a ``Session``, each one step of a transaction its caller owns, run in
the default thread pool or (messages, giving a CP up) in the writer. The rules they keep
are :mod:`central.cluster`'s.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.orm import Session

from common.db import batch
from common.events import Event, EventType, record

__all__ = [
    "CHANNEL",
    "engine_seen",
    "give_up",
    "join",
    "leave",
    "notify",
    "owner",
    "reap",
    "renew",
    "served",
    "take",
    "view",
]

CHANNEL = "ev_central"

_ALIVE = "heartbeat_at >= now() - make_interval(secs => :ttl)"
_OWNER = text(
    f"SELECT o.node_id FROM cp_owners o JOIN central_nodes n ON n.id = o.node_id "
    f"WHERE o.cp_id = :cp AND n.{_ALIVE}"
)
_TAKE = text(
    "INSERT INTO cp_owners (cp_id, node_id, since, engine_up) VALUES (:cp, :me, now(), false) "
    "ON CONFLICT (cp_id) DO UPDATE SET node_id = :me, since = now(), engine_up = false "
    "WHERE cp_owners.node_id = :me OR NOT EXISTS (SELECT 1 FROM central_nodes n "
    f"WHERE n.id = cp_owners.node_id AND n.{_ALIVE}) RETURNING since"
)
_VIEW = text(
    "SELECT c.id, c.last_state, c.operator_stopped, o.node_id, o.engine_up "
    "FROM charge_points c LEFT JOIN cp_owners o ON o.cp_id = c.id "
    "WHERE o.node_id IS DISTINCT FROM :me"
)
_NODE = text(
    "INSERT INTO central_nodes (id, started_at, heartbeat_at) VALUES (:me, now(), now()) "
    "ON CONFLICT (id) DO UPDATE SET started_at = now(), heartbeat_at = now()"
)


def join(session: Session, me: str) -> None:
    """Start a lease, holding no CP (a process restarted at its address starts afresh)."""
    session.execute(_NODE, {"me": me})
    session.execute(text("DELETE FROM cp_owners WHERE node_id = :me"), {"me": me})
    show_unserved(session)


def leave(session: Session, me: str) -> None:
    """End the lease: every CP served here is free at once."""
    session.execute(text("DELETE FROM cp_owners WHERE node_id = :me"), {"me": me})
    session.execute(text("DELETE FROM central_nodes WHERE id = :me"), {"me": me})


def renew(session: Session, me: str) -> bool:
    """Renew the lease; False if the others had declared it dead (its CPs are gone)."""
    result: Any = session.execute(
        text("UPDATE central_nodes SET heartbeat_at = now() WHERE id = :me"), {"me": me}
    )
    if result.rowcount:
        return True
    session.execute(_NODE, {"me": me})
    return False


def served(session: Session, me: str) -> set[str]:
    """The CPs the database says this process serves."""
    rows = session.execute(text("SELECT cp_id FROM cp_owners WHERE node_id = :me"), {"me": me})
    return set(rows.scalars())


def owner(conn: Session | Connection, cp_id: str, ttl: float) -> str | None:
    """The live process serving ``cp_id``, if any."""
    found = conn.execute(_OWNER, {"cp": cp_id, "ttl": ttl}).scalar()
    return None if found is None else str(found)


def take(session: Session, cp_id: str, me: str, ttl: float) -> datetime | None:
    """Serve ``cp_id`` unless another live process does; the lease's start, or None."""
    since: datetime | None = session.execute(_TAKE, {"cp": cp_id, "me": me, "ttl": ttl}).scalar()
    return since


def give_up(session: Session, cp_id: str, me: str, since: datetime) -> None:
    """Free the CP, if the lease is still the one taken at ``since`` (not a newer one)."""
    session.execute(
        text("DELETE FROM cp_owners WHERE cp_id = :cp AND node_id = :me AND since = :since"),
        {"cp": cp_id, "me": me, "since": since},
    )


def engine_seen(session: Session, cp_id: str, me: str, up: bool) -> None:
    session.execute(
        text("UPDATE cp_owners SET engine_up = :up WHERE cp_id = :cp AND node_id = :me"),
        {"cp": cp_id, "me": me, "up": up},
    )


def reap(session: Session, ttl: float) -> tuple[list[str], int]:
    """Delete dead processes and their leases; mark the CPs nobody serves DISCONNECTED.

    Returns the dead processes and how many CPs were freed.
    """
    dead = session.execute(
        text(f"DELETE FROM central_nodes WHERE NOT ({_ALIVE}) RETURNING id"), {"ttl": ttl}
    )
    gone = [str(node) for node in dead.scalars()]
    freed = session.execute(
        text(
            "DELETE FROM cp_owners o WHERE NOT EXISTS "
            "(SELECT 1 FROM central_nodes n WHERE n.id = o.node_id) RETURNING cp_id"
        )
    )
    count = len(freed.all())
    show_unserved(session)
    return gone, count


def show_unserved(session: Session) -> int:
    """Mark DISCONNECTED, with their events, the CPs no live process serves; how many.

    Rows are locked in id order: a process taking one writes its state after this mark,
    and of two processes marking at once, the second finds nothing left to mark.
    """
    rows = session.execute(
        text(
            "SELECT id, last_state FROM charge_points c WHERE last_state <> 'DISCONNECTED' "
            "AND NOT EXISTS (SELECT 1 FROM cp_owners o WHERE o.cp_id = c.id) "
            "ORDER BY id FOR UPDATE"
        )
    ).all()
    if not rows:
        return 0
    session.execute(
        text("UPDATE charge_points SET last_state = 'DISCONNECTED' WHERE id = ANY(:ids)"),
        {"ids": [cp_id for cp_id, _ in rows]},
    )
    for cp_id, old in rows:
        record(
            session,
            Event(
                EventType.CP_STATE_CHANGED,
                "central",
                {"from": old, "to": "DISCONNECTED", "reason": "no Central serves it"},
                cp_id=cp_id,
            ),
        )
    return len(rows)


def view(conn: Session | Connection, me: str) -> list[Any]:
    """The last state, operator stop, owner and whether the owner has its engine, of every
    CP ``me`` does not serve."""
    return list(conn.execute(_VIEW, {"me": me}))


def notify(session: Session, payload: str) -> None:
    """Send ``payload`` to every process listening, when this transaction commits.

    In a writer batch, one statement sends all of the batch's messages, in order.
    """
    batch.later(session, _notify_all, payload)


_NOTIFY = text(
    "SELECT pg_notify(:channel, p) "
    "FROM unnest(CAST(:payloads AS text[])) WITH ORDINALITY AS t(p, i) ORDER BY i"
)


def _notify_all(session: Session, payloads: list[str]) -> None:
    session.execute(_NOTIFY, {"channel": CHANNEL, "payloads": payloads})
