"""Central's database writer on SQLite and PostgreSQL: batches, their events, their chain."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from functools import partial

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from central import reads, store
from central.states import CPState
from central.writer import DbWriter
from common.db import Database, open_database
from common.db.chain import verify_chain
from common.db.models import AuditEntry, ChargePoint, ChargingSession, OutboxRow, SessionStatus
from common.events import Event, EventType, record
from tests.support.auditkeys import TEST_AUDIT_KEYS


def _progress(session_id: str, kwh: float) -> dict[str, object]:
    return {"session_id": session_id, "cp_id": "CP1", "driver_id": "d1", "kwh": kwh, "kw": 7.0}


def _state_event(n: int) -> Event:
    return Event(EventType.CP_STATE_CHANGED, "central", {"n": n}, cp_id="CP1")


def _fail(_session: Session) -> None:
    raise ValueError("this item is bad")


def _setup(session: Session) -> None:
    session.add(ChargePoint(id="CP1", location="Madrid", price_eur_kwh=Decimal("0.30")))
    session.flush()
    for sid in ("s1", "s2"):
        session.add(
            ChargingSession(
                id=sid,
                cp_id="CP1",
                driver_id="d1",
                status=SessionStatus.SUPPLYING,
                price_eur_kwh=Decimal("0.30"),
            )
        )


def _run_batch(db_url: str, items: list) -> tuple[list, Database]:
    """On a fresh database with CP1 and its sessions, ``items`` as one batch; their outcomes."""
    db = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)
    with db.transaction() as session:
        _setup(session)
    return _one_batch(db, items), db


def _one_batch(db: Database, items: list) -> list:
    """Submit ``items`` while the writer is held, so they form one batch; their outcomes."""
    writer = DbWriter(db)
    futures = [writer.submit(fn) for fn in items]  # queued before the thread starts
    writer.start()
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.result(timeout=10))
        except Exception as exc:
            outcomes.append(exc)
    writer.stop()
    return outcomes


def test_a_batch_writes_its_events_in_order_and_keeps_the_chain(db_url: str) -> None:
    items = [partial(record, event=_state_event(n)) for n in range(50)]
    items.insert(10, partial(store.persist_progress, progress=_progress("s1", 1.5)))
    items.insert(20, partial(store.persist_progress, progress=_progress("s1", 2.5)))
    items.insert(30, partial(store.persist_progress, progress=_progress("s2", 0.5)))
    _, db = _run_batch(db_url, items)
    with db.transaction() as session:
        outbox = session.scalars(select(OutboxRow).order_by(OutboxRow.id)).all()
        audited = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        assert len(outbox) == 53
        states = [row.payload for row in outbox if '"cp.state_changed"' in row.payload]
        assert [f'"n": {n}' in p or f'"n":{n}' in p for n, p in enumerate(states)] == [True] * 50
        assert len(audited) == 50  # progress is not audited
        assert verify_chain(session, TEST_AUDIT_KEYS).ok
        # The latest energy of each session, not the order of the UPDATEs, wins.
        assert session.get(ChargingSession, "s1").energy_kwh == Decimal("2.5")
        assert session.get(ChargingSession, "s2").energy_kwh == Decimal("0.5")
    db.dispose()


def test_a_failing_item_fails_alone_and_its_neighbours_keep_their_events(db_url: str) -> None:
    items = [
        partial(record, event=_state_event(1)),
        partial(store.persist_progress, progress=_progress("s1", 3.0)),
        _fail,
        partial(record, event=_state_event(2)),
    ]
    outcomes, db = _run_batch(db_url, items)
    assert isinstance(outcomes[2], ValueError)
    assert outcomes[:2] == [None, None] and outcomes[3] is None
    with db.transaction() as session:
        assert len(session.scalars(select(OutboxRow)).all()) == 3
        assert len(session.scalars(select(AuditEntry)).all()) == 2
        assert verify_chain(session, TEST_AUDIT_KEYS).ok
        assert session.get(ChargingSession, "s1").energy_kwh == Decimal("3.0")
    db.dispose()


def test_settle_in_a_batch_bills_the_energy_recorded_before_it(db_url: str) -> None:
    """A telemetry collected earlier in the batch is written before settle reads the row."""
    items = [
        partial(store.persist_progress, progress=_progress("s1", 4.0)),
        partial(store.settle, session_id="s1", kwh=Decimal("1.0"), reason="unplugged"),
    ]
    outcomes, db = _run_batch(db_url, items)
    ticket, settled = outcomes[1]
    assert settled and ticket.energy_kwh == Decimal("4.0")
    with db.transaction() as session:
        row = session.get(ChargingSession, "s1")
        assert row.status == SessionStatus.ENDED and row.energy_kwh == Decimal("4.0")
    db.dispose()


@pytest.mark.parametrize("n", [1, 600])
def test_batches_of_any_size_verify(db_url: str, n: int) -> None:
    _, db = _run_batch(db_url, [partial(record, event=_state_event(i)) for i in range(n)])
    with db.transaction() as session:
        report = verify_chain(session, TEST_AUDIT_KEYS)
        assert report.ok and report.checked == n
    db.dispose()


def test_state_changes_are_not_registration_changes(db_url: str) -> None:
    """The registration refresh reads rows changed since its last run: Central's own state
    writes must not put the whole fleet back into every refresh."""
    _, db = _run_batch(db_url, [])
    with db.transaction() as session:
        registered_at = session.get(ChargePoint, "CP1").updated_at
    items = [
        partial(store.persist_state, cp_id="CP1", old=CPState(a), new=CPState(b), reason="test")
        for a, b in [("DISCONNECTED", "ACTIVATED"), ("ACTIVATED", "BROKEN")]
    ]
    assert _one_batch(db, items) == [None, None]
    with db.transaction() as session:
        cp = session.get(ChargePoint, "CP1")
        assert cp.last_state == "BROKEN" and cp.updated_at == registered_at
        assert reads.load_cps(session, since=registered_at + timedelta(microseconds=1)) == []
        assert len(session.scalars(select(OutboxRow)).all()) == 2
    db.dispose()
