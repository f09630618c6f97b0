"""Logins' verifier look-ups on SQLite and PostgreSQL: answered together, and only for
active principals."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import event

from central.verifiers import VerifierLookups
from common.db import open_database
from common.db.models import ChargePoint, Credential, Driver
from common.protocol.keys import make_verifier
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.scrypt import CHEAP_SCRYPT


def test_logins_arriving_together_share_one_query(db_url: str) -> None:
    db = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)
    secrets = {f"CP{i}": make_verifier(f"secret-{i}", CHEAP_SCRYPT) for i in range(50)}
    with db.transaction() as s:
        for cp_id, verifier in secrets.items():
            s.add(ChargePoint(id=cp_id, location="Madrid", price_eur_kwh=Decimal("0.30")))
            s.add(Credential.of("cp", cp_id, verifier))
        s.add(Driver(id="D1", disabled_at=datetime.now(UTC)))
        s.add(Credential.of("driver", "D1", make_verifier("d", CHEAP_SCRYPT)))
    with db.transaction() as s:
        s.get(ChargePoint, "CP7").deregistered_at = datetime.now(UTC)
    selects: list[str] = []
    event.listen(
        db.engine,
        "before_cursor_execute",
        lambda conn, cur, statement, *args: (
            selects.append(statement) if statement.lstrip().upper().startswith("SELECT") else None
        ),
    )

    async def logins() -> list[object]:
        lookups = VerifierLookups(db)
        asks = [lookups.get("cp", cp_id) for cp_id in secrets]
        asks += [lookups.get("cp", "nobody"), lookups.get("driver", "D1")]
        return list(await asyncio.gather(*asks))

    found = asyncio.run(logins())
    expected = [None if cp_id == "CP7" else v for cp_id, v in secrets.items()]
    assert found == [*expected, None, None]  # deregistered, unknown, disabled: nothing
    assert len(selects) <= 4  # not 52: the first ask alone, then everybody else together
    db.dispose()
