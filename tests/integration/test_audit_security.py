"""Attacks on API_Central's reads and on the audit chain, against a real Central process.

Each test runs the attack as it worked before (anonymous reads of personal data, an
anonymous request that re-verified the whole chain, a rewritten or truncated chain) and
asserts that it now fails, and that the legitimate path (the operator) still works.
docs/security.md, "API_Central" and "Audit log".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import delete, select, update

from central.__main__ import main as central_main
from central.auditlog import latest_published
from central.drivers import add_driver
from common.client import AuthenticationFailed
from common.db import open_database
from common.db.audit import GENESIS, Entry, append
from common.db.chain import verify_chain
from common.db.models import AuditCheckpoint, AuditEntry, AuditHead
from common.infra import EmbeddedBroker
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.broker import wait_until
from tests.support.central import (
    CentralProcess,
    ScriptedCP,
    provision_cp,
    start_central,
)
from tests.support.scrypt import CHEAP_SCRYPT

pytestmark = pytest.mark.integration
T = TypeVar("T")

PRIVATE = ("/audit", "/audit.csv", "/drivers", "/sessions", "/stats")
PUBLIC_CP_FIELDS = {"id", "location", "price_eur_kwh", "state", "registered", "stopped_by"}


def wait_for(what: Callable[[], T], timeout: float = 20) -> T:
    return wait_until(what, timeout, "the audit log")


# ---------------------------------------------------------------- 1. the read models


def test_anonymous_reads_see_only_the_public_model(
    central: CentralProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = provision_cp(central.db_url, "CP1", "Madrid", "0.40")
    add_driver(central.db_url, "D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)

    async def scenario() -> None:
        with pytest.raises(AuthenticationFailed):  # an id probe: "unknown principal"
            await ScriptedCP("GHOST", secret, central.addr).connect()
        cp = await ScriptedCP("CP1", secret, central.addr).connect()
        await central.wait_state("CP1", "ACTIVATED")
        accept = asyncio.create_task(cp.accept_authorization())
        r = await asyncio.to_thread(central.post, "/sessions", {"cp_id": "CP1", "driver_id": "D1"})
        session_id = await accept
        assert r.status_code == 201
        cp.plug(session_id)
        await central.wait_state("CP1", "SUPPLYING")
        cp.telemetry(session_id, 1.5)
        await asyncio.to_thread(check_reads, central, session_id)
        await cp.close()

    asyncio.run(scenario())
    # API_Central binds to loopback unless told otherwise.
    with pytest.raises(SystemExit):
        central_main(["--help"])
    assert "default 127.0.0.1:8001" in " ".join(capsys.readouterr().out.split())


def check_reads(central: CentralProcess, session_id: str) -> None:
    audit = wait_for(
        lambda: [
            e
            for e in central.get("/audit?action=cp.auth_failed").json()["entries"]
            if e["actor"] == "GHOST"
        ]
    )
    assert audit, "the operator sees the failed login, its address and reason"
    # The attack: every one of these answered anyone, with driver ids, addresses and
    # failure reasons. Now each is a 401 that names nothing.
    for path in PRIVATE:
        r = central.get(path, anonymous=True)
        assert r.status_code == 401, path
        assert r.json()["error"] == "unauthorized"
        for secret_fact in ("GHOST", "D1", "127.0.0.1", "unknown principal", session_id):
            assert secret_fact not in r.text, (path, secret_fact)
    public = central.get("/chargepoints", anonymous=True)
    assert public.status_code == 200
    (cp,) = public.json()["chargepoints"]
    assert set(cp) == PUBLIC_CP_FIELDS | {"session"}
    assert (cp["id"], cp["location"], cp["state"], cp["price_eur_kwh"]) == (
        "CP1",
        "Madrid",
        "SUPPLYING",
        0.4,
    )
    assert set(cp["session"]) == {"kw", "kwh"}
    one = central.get("/chargepoints/CP1", anonymous=True).json()
    for body in (public.text, str(one)):
        assert "D1" not in body and session_id not in body
    assert central.get("/weather", anonymous=True).status_code == 200
    assert central.get("/health", anonymous=True).status_code == 200
    spec = central.get("/openapi.json", anonymous=True).json()
    assert spec["paths"]["/api/audit"]["get"]["security"] == [{"operator": []}]
    # A wrong token is refused, not served as anonymous.
    wrong = {"Authorization": "Bearer not-the-token"}
    assert central.get("/chargepoints", anonymous=True, headers=wrong).status_code == 401
    # The operator still reads everything.
    full = central.get("/chargepoints/CP1").json()
    assert full["session"]["driver_id"] == "D1" and full["session"]["session_id"] == session_id
    assert [d["id"] for d in central.get("/drivers").json()["drivers"]] == ["D1"]
    assert central.get("/sessions").json()["sessions"][0]["driver_id"] == "D1"


# ---------------------------------------------------------------- 2. verification cost


ENTRIES = 40_000


def fill_chain(url: str, count: int) -> None:
    """``count`` signed entries, as months of operation would leave."""
    db = open_database(url, audit_keys=TEST_AUDIT_KEYS)
    for start in range(0, count, 5000):
        with db.transaction() as session:
            append(
                session,
                [
                    Entry(actor="central", action="cp.state_changed", cp_id=f"CP{i % 50}")
                    for i in range(start, min(count, start + 5000))
                ],
            )
    db.dispose()


def head_id(url: str) -> int:
    db = open_database(url)
    with db.read() as session:
        head = session.get(AuditHead, 1)
        assert head is not None
        value = head.last_id
    db.dispose()
    return value


def checkpointed(url: str) -> int:
    db = open_database(url)
    with db.read() as session:
        value = session.scalar(select(AuditCheckpoint.entry_id).order_by(AuditCheckpoint.id.desc()))
    db.dispose()
    return value or 0


def test_audit_is_verified_incrementally_and_only_for_the_operator(
    tmp_path: Path, db_url: str, free_port: Callable[[], int]
) -> None:
    fill_chain(db_url, ENTRIES)
    provision_cp(db_url, "CP1")
    central = start_central(
        tmp_path, db_url, free_port(), free_port(), audit_checkpoint_interval=0.2
    )
    try:
        # The attack: anonymous GET /api/audit made Central re-verify 40,000 entries.
        for _ in range(3):
            assert central.get("/audit", anonymous=True).status_code == 401
        # Central verifies once in the background and signs a checkpoint of the head.
        wait_for(lambda: checkpointed(db_url) == ENTRIES, timeout=60)
        chain = central.get("/audit?limit=1").json()["chain"]
        assert chain["ok"] and chain["verified_through"] == ENTRIES
        assert chain["checked"] == 0, "nothing appended since the last check: nothing re-read"
        assert central.post("/chargepoints/CP1/stop").status_code == 200
        wait_for(lambda: head_id(db_url) > ENTRIES)
        chain = central.get("/audit?limit=1").json()["chain"]
        new = head_id(db_url) - ENTRIES
        assert chain["ok"] and chain["verified_through"] == ENTRIES + new
        assert chain["checked"] <= new, "only the entries appended since"
    finally:
        central.proc.stop()
    # A restart starts from the stored checkpoint, not from the first entry.
    central = start_central(tmp_path, db_url, free_port(), free_port(), name="central-2")
    try:
        chain = central.get("/audit?limit=1").json()["chain"]
        assert chain["ok"] and chain["verified_through"] == head_id(db_url)
        assert chain["checked"] < 100
        full = central.get("/audit?limit=1&verify=full").json()["chain"]
        assert full["ok"] and full["checked"] == head_id(db_url)
    finally:
        central.proc.stop()


# ---------------------------------------------------------------- 3. rewriting, truncation


def old_hash(prev: str, row: AuditEntry) -> str:
    """The unkeyed chain's rule: anyone could compute it."""
    body = json.dumps(
        {
            "ts": row.ts.astimezone(UTC).isoformat(timespec="microseconds"),
            "actor": row.actor,
            "source_ip": row.source_ip,
            "action": row.action,
            "cp_id": row.cp_id,
            "params": row.params,
            "event_id": row.event_id,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{prev}{body}".encode()).hexdigest()


def rewrite_from(url: str, first: int, *, unkeyed: bool) -> None:
    """What someone with write access to the database, but no key, can do.

    Edit entry ``first``, recompute every later hash with plain SHA-256 (the old rule)
    and move the head; ``unkeyed`` also clears every entry's key id, as if the whole
    chain had been written before it was keyed.
    """
    db = open_database(url)
    with db.transaction() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        prev = GENESIS
        for row in rows:
            if row.id == first:
                row.actor = "someone-else"
            if unkeyed:
                row.key_id = None
            if unkeyed or row.id >= first:
                row.prev_hash = prev
                row.hash = old_hash(prev, row)
            prev = row.hash
        session.execute(delete(AuditCheckpoint))  # and hide the signed heads
        session.execute(update(AuditHead).values(last_id=rows[-1].id, last_hash=prev))
    db.dispose()


def operator_commands(central: CentralProcess, count: int) -> None:
    for i in range(count):
        command = "stop" if i % 2 == 0 else "resume"
        assert central.post(f"/chargepoints/CP1/{command}").status_code == 200


def test_rewriting_the_chain_without_the_key_is_detected(
    tmp_path: Path, db_url: str, free_port: Callable[[], int]
) -> None:
    provision_cp(db_url, "CP1")
    central = start_central(
        tmp_path, db_url, free_port(), free_port(), audit_checkpoint_interval=0.2
    )
    try:
        operator_commands(central, 6)
        total = wait_for(lambda: head_id(db_url) >= 6 and head_id(db_url))
        wait_for(lambda: checkpointed(db_url) == total)
        assert central.get("/audit").json()["chain"]["ok"]  # the legitimate chain
        db = open_database(db_url)
        with db.read() as session:
            assert verify_chain(session, TEST_AUDIT_KEYS).ok
            assert {e.key_id for e in session.scalars(select(AuditEntry))} == {
                TEST_AUDIT_KEYS.current
            }
        db.dispose()

        # Edit entry 2 and recompute the rest, as the unkeyed chain allowed.
        rewrite_from(db_url, 2, unkeyed=False)
        chain = central.get("/audit").json()["chain"]  # the incremental check
        assert not chain["ok"] and "rewritten" in chain["reason"]
        full = central.get("/audit?verify=full").json()["chain"]
        assert not full["ok"] and full["first_bad_id"] == 2 and full["reason"] == "entry altered"

        # Rewrite the whole chain under the old rule, as if written before the key.
        rewrite_from(db_url, 2, unkeyed=True)
        chain = central.get("/audit").json()["chain"]
        assert not chain["ok"] and "rewritten" in chain["reason"]
        full = central.get("/audit?verify=full").json()["chain"]
        assert not full["ok"] and full["first_bad_id"] == 1 and full["reason"] == "unkeyed entry"
    finally:
        central.proc.stop()


def truncate(url: str, keep: int) -> None:
    """Delete every entry after ``keep`` and the checkpoints, and move the head back."""
    db = open_database(url)
    with db.transaction() as session:
        last = session.get(AuditEntry, keep)
        assert last is not None
        session.execute(delete(AuditEntry).where(AuditEntry.id > keep))
        session.execute(delete(AuditCheckpoint))
        session.execute(update(AuditHead).values(last_id=keep, last_hash=last.hash))
    db.dispose()


def test_truncating_the_chain_is_detected_by_the_checkpoint_on_kafka(
    tmp_path: Path, db_url: str, free_port: Callable[[], int], fresh_broker: EmbeddedBroker
) -> None:
    bootstrap = fresh_broker.bootstrap
    provision_cp(db_url, "CP1")

    def start(name: str) -> CentralProcess:
        return start_central(
            tmp_path,
            db_url,
            free_port(),
            free_port(),
            kafka=bootstrap,
            audit_checkpoint_interval=0.2,
            name=name,
        )

    central = start("central-1")
    try:
        operator_commands(central, 6)
        written = wait_for(lambda: head_id(db_url) >= 6 and head_id(db_url))
        # The newest checkpoint on Kafka covers at least those entries (an entry written
        # meanwhile may move it further: then that one is the head the attack cuts).
        published = wait_for(
            lambda: [c for c in latest_published(bootstrap) if c.entry_id >= written], timeout=30
        )
        total = max(c.entry_id for c in published)
        assert central.get("/audit").json()["chain"]["ok"]
    finally:
        central.proc.stop()
    central = start("central-2")  # the legitimate restart: the chain reaches the checkpoint
    try:
        assert central.get("/audit").json()["chain"]["ok"]
    finally:
        central.proc.stop()

    truncate(db_url, total - 3)
    db = open_database(db_url)
    with db.read() as session:  # the database alone cannot tell: the attack is real
        assert verify_chain(session, TEST_AUDIT_KEYS).ok
    db.dispose()

    central = start("central-3")
    try:
        chain = central.get("/audit").json()["chain"]
        assert not chain["ok"]
        assert chain["first_bad_id"] == total and "checkpoint" in chain["reason"]
        # Appending more does not paper over it, and no checkpoint blesses the cut.
        operator_commands(central, 4)
        wait_for(lambda: head_id(db_url) >= total)
        assert not central.get("/audit").json()["chain"]["ok"]
        assert checkpointed(db_url) == 0
    finally:
        central.proc.stop()
