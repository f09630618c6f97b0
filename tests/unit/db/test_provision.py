"""common.db.provision: CPs and drivers straight in a fresh SQLite database."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from common.db import open_database
from common.db.models import ChargePoint, Credential, Driver, PrincipalKind
from common.db.provision import numbered, provision
from common.protocol.keys import ScryptParams, check_secret

LOW = ScryptParams(n=16)


def test_numbered_ids_are_zero_padded_to_five_digits() -> None:
    assert numbered("CP", 3) == ["CP00000", "CP00001", "CP00002"]
    assert numbered("D", 0) == []


def test_each_principal_gets_a_secret_its_stored_verifier_accepts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ev.db"
    made = provision(
        url,
        ["A", "B", "C"],
        params=LOW,
        locations=["Oslo", "Lima"],
        price=Decimal("0.45"),
        drivers=["D1"],
    )
    assert list(made.cps) == ["A", "B", "C"] and list(made.drivers) == ["D1"]
    assert len({*made.cps.values(), *made.drivers.values()}) == 4  # fresh, not shared
    db = open_database(url)
    try:
        with db.read() as session:
            cps = {cp.id: cp for cp in session.scalars(select(ChargePoint))}
            assert {cp_id: cp.location for cp_id, cp in cps.items()} == {
                "A": "Oslo",
                "B": "Lima",
                "C": "Oslo",
            }
            assert {cp.price_eur_kwh for cp in cps.values()} == {Decimal("0.45")}
            assert all(cp.registered for cp in cps.values())
            assert [d.id for d in session.scalars(select(Driver))] == ["D1"]
            stored = {
                (c.principal_kind, c.principal_id): c.verifier()
                for c in session.scalars(select(Credential))
            }
    finally:
        db.dispose()
    for cp_id, secret in made.cps.items():
        verifier = stored[(PrincipalKind.CP, cp_id)]
        assert verifier.params == LOW and check_secret(secret, verifier)
        assert not check_secret(made.cps["A" if cp_id != "A" else "B"], verifier)
    assert check_secret(made.drivers["D1"], stored[(PrincipalKind.DRIVER, "D1")])
