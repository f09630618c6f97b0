"""The data layer on SQLite and PostgreSQL: migrations, the outbox and the audit chain."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from central.auditlog import store
from common.db import open_database
from common.db.auditkeys import AuditKeys, new_key_text
from common.db.chain import ChainReport, ChainVerifier, Checkpoint, verify_chain
from common.db.models import AuditEntry, ChargePoint, OutboxRow
from common.errors import ConfigError
from common.events import Event, EventType, record
from tests.support.auditkeys import TEST_AUDIT_KEYS


def test_migrations_create_schema_and_are_idempotent(db_url: str) -> None:
    open_database(db_url, audit_keys=TEST_AUDIT_KEYS).dispose()
    db = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)  # second start: nothing to do, no error
    with db.transaction() as s:
        s.add(ChargePoint(id="CP1", location="Madrid", price_eur_kwh=Decimal("0.3512")))
    with db.transaction() as s:
        cp = s.get(ChargePoint, "CP1")
        assert cp is not None
        assert cp.price_eur_kwh == Decimal("0.3512")
        assert cp.registered and cp.registered_at.tzinfo is not None
    db.dispose()


def test_event_and_state_change_commit_or_vanish_together(db_url: str) -> None:
    db = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)
    with db.transaction() as s:
        s.add(ChargePoint(id="CP1", location="Madrid", price_eur_kwh=Decimal("0.30")))
        record(s, Event(EventType.CP_REGISTERED, "registry", {"location": "Madrid"}, cp_id="CP1"))
    with pytest.raises(RuntimeError), db.transaction() as s:
        s.add(ChargePoint(id="CP2", location="Bilbao", price_eur_kwh=Decimal("0.30")))
        record(s, Event(EventType.CP_REGISTERED, "registry", {"location": "Bilbao"}, cp_id="CP2"))
        raise RuntimeError("crash before commit")
    with db.transaction() as s:
        rows = s.scalars(select(OutboxRow)).all()
        assert [r.key for r in rows] == ["CP1"]
        assert s.get(ChargePoint, "CP2") is None
        assert [e.cp_id for e in s.scalars(select(AuditEntry))] == ["CP1"]
    db.dispose()


def test_progress_events_are_not_audited(db_url: str) -> None:
    db = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)
    with db.transaction() as s:
        record(s, Event(EventType.SESSION_PROGRESS, "central", {"kwh": 1}, cp_id="CP1"))
        record(s, Event(EventType.OPERATOR_COMMAND, "api", {"command": "stop"}, actor="operator"))
    with db.transaction() as s:
        assert [e.action for e in s.scalars(select(AuditEntry))] == ["operator.command"]
        assert len(s.scalars(select(OutboxRow)).all()) == 2
    db.dispose()


def test_audit_chain_detects_tampering_and_truncation(db_url: str) -> None:
    db = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)
    with db.transaction() as s:
        for i in range(5):
            record(s, Event(EventType.CP_AUTH_FAILED, "central", {"n": i}, source_ip="10.0.0.9"))
    with db.transaction() as s:
        assert verify_chain(s, TEST_AUDIT_KEYS).ok and verify_chain(s, TEST_AUDIT_KEYS).checked == 5
        s.execute(update(AuditEntry).where(AuditEntry.id == 3).values(actor="someone-else"))
    with db.transaction() as s:
        report = verify_chain(s, TEST_AUDIT_KEYS)
        assert not report.ok and report.first_bad_id == 3 and report.reason == "entry altered"
        s.execute(update(AuditEntry).where(AuditEntry.id == 3).values(actor="central"))
        assert verify_chain(s, TEST_AUDIT_KEYS).ok
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        s.delete(last)
    with db.transaction() as s:
        assert verify_chain(s, TEST_AUDIT_KEYS).reason == "entries removed from the end"
    db.dispose()


def test_rotated_keys_keep_old_entries_verifiable(db_url: str) -> None:
    old, new = new_key_text(), new_key_text()
    before, after = AuditKeys.from_text(old), AuditKeys.from_text(f"{new} {old}")
    for keys in (before, after):
        db = open_database(db_url, audit_keys=keys)
        with db.transaction() as s:
            record(s, Event(EventType.OPERATOR_COMMAND, "api", {"k": keys.current}))
        db.dispose()
    db = open_database(db_url)
    with db.read() as s:
        assert [e.key_id for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))] == [
            before.current,
            after.current,
        ]
        assert verify_chain(s, after).ok
        dropped = verify_chain(s, AuditKeys.from_text(new))
        assert not dropped.ok and dropped.first_bad_id == 1
        assert (
            dropped.reason == f"signed with unknown key {before.current} (list it in EV_AUDIT_KEY)"
        )
    # A writer still on the retired key after the rotation: refused, so a leaked old key
    # cannot append either.
    late = open_database(db_url, audit_keys=before)
    with late.transaction() as s:
        record(s, Event(EventType.OPERATOR_COMMAND, "api", {"late": True}))
    late.dispose()
    with db.read() as s:
        report = verify_chain(s, after)
        assert not report.ok and report.first_bad_id == 3
        assert report.reason == f"signed with retired key {before.current} after a newer one"
    # A service set up without keys writes no audited event at all (never an unkeyed one).
    with pytest.raises(ConfigError, match=r"EV_AUDIT_KEY: .*no audit key"), db.transaction() as s:
        record(s, Event(EventType.OPERATOR_COMMAND, "api", {}))
    db.dispose()


def test_the_verifier_reads_only_what_was_appended(db_url: str) -> None:
    db = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)

    def write(n: int) -> None:
        with db.transaction() as s:
            for i in range(n):
                record(s, Event(EventType.CP_STATE_CHANGED, "central", {"i": i}, cp_id="CP1"))

    verifier = ChainVerifier(TEST_AUDIT_KEYS)
    write(30)
    with db.read() as s:
        assert verifier.check(s) == ChainReport(True, 30, 30)
        assert verifier.check(s) == ChainReport(True, 0, 30)
    write(5)
    with db.read() as s:
        assert verifier.check(s) == ChainReport(True, 5, 35)
    with db.transaction() as s:  # what Central stores every checkpoint interval
        store(s, Checkpoint.make(TEST_AUDIT_KEYS, (35, s.get(AuditEntry, 35).hash)))
    write(2)
    restarted = ChainVerifier(TEST_AUDIT_KEYS)
    with db.read() as s:
        assert restarted.check(s) == ChainReport(True, 2, 37)
        assert restarted.check(s, full=True) == ChainReport(True, 37, 37)
    db.dispose()


def test_concurrent_writers_keep_one_chain(db_url: str) -> None:
    """Two writers (as Registry and Central would be) appending at once: one valid chain."""
    dbs = [
        open_database(db_url, audit_keys=TEST_AUDIT_KEYS),
        open_database(db_url, audit_keys=TEST_AUDIT_KEYS),
    ]

    def write(db_index: int) -> None:
        for i in range(20):
            with dbs[db_index].transaction() as s:
                record(s, Event(EventType.CP_STATE_CHANGED, f"w{db_index}", {"i": i}))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with dbs[0].transaction() as s:
        report = verify_chain(s, TEST_AUDIT_KEYS)
        assert report.ok and report.checked == 40
    for db in dbs:
        db.dispose()


def test_bad_database_url_is_one_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="EV_DATABASE_URL: not a database URL"):
        open_database("not a url")
    with pytest.raises(ConfigError, match="cannot open the database"):
        open_database("postgresql+psycopg2://postgres@127.0.0.1:1/none")


def test_migrations_match_the_models(db_url: str) -> None:
    """A model changed without a migration would make this list non-empty."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from common.db.models import Base

    db = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(context, Base.metadata)
    db.dispose()
    assert diffs == []


def test_a_read_does_not_wait_for_a_writer_holding_the_database(db_url: str) -> None:
    """Verifier look-ups and API reads go through ``read()``: a long write must not stall them."""
    db = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)
    with db.transaction() as s:
        s.add(ChargePoint(id="CP1", location="Madrid", price_eur_kwh=Decimal("0.30")))
    writing, release = threading.Event(), threading.Event()

    def long_write() -> None:
        with db.transaction() as s:
            s.execute(update(ChargePoint).values(location="Bilbao"))
            writing.set()
            release.wait(10)

    writer = threading.Thread(target=long_write)
    writer.start()
    assert writing.wait(5)
    seen: list[str] = []

    def read() -> None:
        with db.read() as s:
            seen.extend(s.scalars(select(ChargePoint.location)))

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(5)
    finished_while_writing = not reader.is_alive()
    release.set()
    writer.join(10)
    reader.join(10)
    assert finished_while_writing
    assert seen == ["Madrid"]  # the snapshot before the uncommitted write
    db.dispose()
