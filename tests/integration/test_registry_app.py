"""The registry app on a real database (SQLite and PostgreSQL), through Flask's test client.

Faster than the process tests in ``test_registry.py`` and with a fake clock, so the
rate limiter's windows can be walked through without sleeping.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from common.db import Database, open_database
from common.db.chain import verify_chain
from common.db.models import AuditEntry, ChargePoint, Credential, OutboxRow
from registry.app import create_app
from registry.settings import Settings
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.clock import FakeClock
from tests.support.scrypt import CHEAP_SCRYPT

PROV = "provisioning-token-for-tests"
OPER = "operator-token-for-tests"


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url, audit_keys=TEST_AUDIT_KEYS)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(500.0)


def make_app(db: Database, clock: FakeClock, **overrides: Any) -> Flask:
    options: dict[str, Any] = {"operator_token": OPER, "scrypt": CHEAP_SCRYPT}
    settings = Settings(provisioning_token=PROV, **{**options, **overrides})
    app = create_app(settings, db, clock=clock)
    app.testing = True
    return app


@pytest.fixture
def client(db: Database, clock: FakeClock) -> FlaskClient:
    return make_app(db, clock).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(client: FlaskClient, cp_id: str, **extra: Any) -> Any:
    body = {"id": cp_id, "location": "Madrid", **extra}
    return client.post("/api/chargepoints", json=body, headers=bearer(PROV))


def verify(client: FlaskClient, cp_id: str, secret: str, ip: str = "127.0.0.1") -> Any:
    return client.post(
        "/api/verify", json={"id": cp_id, "secret": secret}, environ_base={"REMOTE_ADDR": ip}
    )


def events(db: Database) -> list[dict[str, Any]]:
    with db.transaction() as s:
        return [json.loads(r.payload) for r in s.scalars(select(OutboxRow).order_by(OutboxRow.id))]


def test_lifecycle_register_verify_deregister_reregister_rotate(
    db: Database, clock: FakeClock
) -> None:
    client = make_app(db, clock, max_failures_per_id=50).test_client()
    r = register(client, "CP1", price=0.42)
    assert r.status_code == 201, r.json
    assert r.headers["Location"] == "/api/chargepoints/CP1"
    assert r.headers["Cache-Control"] == "no-store"
    first = r.json["secret"]
    assert r.json["price_eur_kwh"] == "0.42" and r.json["status"] == "registered"

    again = register(client, "CP1")
    assert (again.status_code, again.json["error"]) == (409, "already_registered")

    public = client.get("/api/chargepoints/CP1").json
    assert public["location"] == "Madrid" and "secret" not in public

    assert verify(client, "CP1", first).json == {"id": "CP1", "valid": True, "status": "registered"}
    wrong = verify(client, "CP1", "not-the-secret")
    assert (wrong.status_code, wrong.json["error"]) == (401, "invalid_credentials")
    assert wrong.headers["WWW-Authenticate"].startswith("Bearer")

    assert client.delete("/api/chargepoints/CP1", headers=bearer(first)).status_code == 204
    assert verify(client, "CP1", first).status_code == 401
    gone = client.get("/api/chargepoints/CP1").json
    assert gone["status"] == "deregistered" and gone["deregistered_at"]
    with db.transaction() as s:
        assert s.get(Credential, ("cp", "CP1")) is None  # Central cannot authenticate it
        cp = s.get(ChargePoint, "CP1")
        assert cp is not None and not cp.registered
    twice = client.delete("/api/chargepoints/CP1", headers=bearer(OPER))
    assert (twice.status_code, twice.json["error"]) == (409, "not_registered")

    back = register(client, "CP1", location="Bilbao")
    assert back.status_code == 201
    second = back.json["secret"]
    assert second != first and back.json["price_eur_kwh"] == "0.30"  # the default price
    assert verify(client, "CP1", first).status_code == 401
    assert verify(client, "CP1", second).status_code == 200

    rotated = client.post("/api/chargepoints/CP1/rotate", headers=bearer(second))
    assert rotated.status_code == 200 and rotated.headers["Cache-Control"] == "no-store"
    third = rotated.json["secret"]
    assert verify(client, "CP1", second).status_code == 401
    assert verify(client, "CP1", third).status_code == 200
    by_operator = client.post("/api/chargepoints/CP1/rotate", headers=bearer(OPER))
    assert by_operator.status_code == 200
    assert verify(client, "CP1", third).status_code == 401

    types = [(e["type"], e.get("actor"), e["data"]) for e in events(db)]
    assert types == [
        (
            "cp.registered",
            "provisioning",
            {"location": "Madrid", "price_eur_kwh": "0.42", "reregistered": False},
        ),
        ("registry.verify_failed", "anonymous", {"action": "verify", "reason": "wrong_secret"}),
        ("cp.deregistered", "cp:CP1", {"by": "self"}),
        ("registry.verify_failed", "anonymous", {"action": "verify", "reason": "deregistered"}),
        (
            "cp.registered",
            "provisioning",
            {"location": "Bilbao", "price_eur_kwh": "0.30", "reregistered": True},
        ),
        ("registry.verify_failed", "anonymous", {"action": "verify", "reason": "wrong_secret"}),
        ("cp.credential_rotated", "cp:CP1", {"by": "self"}),
        ("registry.verify_failed", "anonymous", {"action": "verify", "reason": "wrong_secret"}),
        ("cp.credential_rotated", "operator", {"by": "operator"}),
        ("registry.verify_failed", "anonymous", {"action": "verify", "reason": "wrong_secret"}),
    ]
    assert all(e.get("source_ip") == "127.0.0.1" and e["cp_id"] == "CP1" for e in events(db))
    with db.transaction() as s:
        assert verify_chain(s, TEST_AUDIT_KEYS).ok
        assert len(s.scalars(select(AuditEntry)).all()) == len(types)


def test_tokens(db: Database, clock: FakeClock) -> None:
    client = make_app(db, clock).test_client()
    body = {"id": "CP2", "location": "Vigo"}
    missing = client.post("/api/chargepoints", json=body)
    assert (missing.status_code, missing.json["error"]) == (401, "missing_token")
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="ev-registry"'
    basic = client.post("/api/chargepoints", json=body, headers={"Authorization": "Basic eDp5"})
    assert basic.json["error"] == "missing_token"
    wrong = client.post("/api/chargepoints", json=body, headers=bearer(PROV + "x"))
    assert (wrong.status_code, wrong.json["error"]) == (401, "invalid_token")
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    odd = client.post("/api/chargepoints", json=body, headers=bearer("\u00e9\u00e8"))
    assert odd.status_code == 401

    assert client.post("/api/chargepoints", json=body, headers=bearer(OPER)).status_code == 201
    assert client.get("/api/chargepoints", headers=bearer(PROV)).status_code == 401
    listed = client.get("/api/chargepoints", headers=bearer(OPER))
    assert [cp["id"] for cp in listed.json["chargepoints"]] == ["CP2"]
    assert "secret" not in json.dumps(listed.json)
    # The provisioning token registers; it cannot deregister.
    assert client.delete("/api/chargepoints/CP2", headers=bearer(PROV)).status_code == 401

    no_operator = make_app(db, clock, operator_token=None).test_client()
    assert no_operator.get("/api/chargepoints", headers=bearer(OPER)).status_code == 401


def test_bad_input_gets_json_errors_never_500(client: FlaskClient) -> None:
    h = bearer(PROV)
    cases = [
        (client.post("/api/chargepoints", data="id=CP1", headers=h), 415, "unsupported_media_type"),
        (
            client.post("/api/chargepoints", data="{", headers=h, content_type="application/json"),
            400,
            "malformed_json",
        ),
        (
            client.post(
                "/api/chargepoints", data="[" * 10000, headers=h, content_type="application/json"
            ),
            400,
            "malformed_json",
        ),
        (
            client.post(
                "/api/chargepoints", data=b"\xff\xfe", headers=h, content_type="application/json"
            ),
            400,
            "malformed_json",
        ),
        (
            client.post(
                "/api/chargepoints",
                data='{"id":"A","location":"B","price":NaN}',
                headers=h,
                content_type="application/json",
            ),
            400,
            "malformed_json",
        ),
        (client.post("/api/chargepoints", json=["CP1"], headers=h), 400, "invalid_body"),
        (client.post("/api/chargepoints", json={"id": "CP1"}, headers=h), 400, "invalid_body"),
        (
            client.post(
                "/api/chargepoints", json={"id": "CP1", "location": "x", "pw": 1}, headers=h
            ),
            400,
            "invalid_body",
        ),
        (
            client.post("/api/chargepoints", json={"id": "CP 1", "location": "x"}, headers=h),
            400,
            "invalid_field",
        ),
        (
            client.post("/api/chargepoints", json={"id": "CP1", "location": ""}, headers=h),
            400,
            "invalid_field",
        ),
        (
            client.post(
                "/api/chargepoints", json={"id": "CP1", "location": "x", "price": -1}, headers=h
            ),
            400,
            "invalid_field",
        ),
        (
            client.post(
                "/api/chargepoints", json={"id": "CP1", "location": "x" * 20000}, headers=h
            ),
            413,
            "payload_too_large",
        ),
        (client.post("/api/verify", json={"id": "CP1", "secret": 5}), 400, "invalid_field"),
        (client.get("/api/chargepoints/NOPE"), 404, "not_found"),
        (client.get("/api/chargepoints/has.dot"), 404, "not_found"),
        (client.delete("/api/chargepoints/NOPE", headers=bearer(OPER)), 404, "not_found"),
        (client.post("/api/chargepoints/NOPE/rotate", headers=bearer(OPER)), 404, "not_found"),
        (client.put("/api/chargepoints/CP1"), 405, "method_not_allowed"),
        (client.get("/api/nothing-here"), 404, "not_found"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.json["error"]) == (status, code), response.json
        assert response.json["message"]


def test_brute_force_on_one_id_is_locked_out_then_released(
    client: FlaskClient, db: Database, clock: FakeClock
) -> None:
    secret = register(client, "CP3").json["secret"]
    for n in range(5):
        assert verify(client, "CP3", f"guess-{n}").status_code == 401
        clock.now += 1
    locked = verify(client, "CP3", secret)  # even the right secret waits
    assert locked.status_code == 429 and locked.json["error"] == "too_many_failures"
    assert int(locked.headers["Retry-After"]) == 55  # the first failure leaves the window
    # Other ids, and the CP's own secret through DELETE, are refused/allowed as they should.
    assert client.delete("/api/chargepoints/CP3", headers=bearer(secret)).status_code == 429
    register(client, "CP4")
    assert verify(client, "CP4", "guess").status_code == 401
    lockouts = [e for e in events(db) if e["type"] == "registry.lockout"]
    assert len(lockouts) == 1
    assert lockouts[0]["cp_id"] == "CP3"
    assert lockouts[0]["data"] == {
        "scope": "id",
        "key": "CP3",
        "failures": 5,
        "window_s": 60.0,
        "retry_after_s": 56,
    }
    clock.now += 54
    assert verify(client, "CP3", secret).status_code == 429
    clock.now += 1
    assert verify(client, "CP3", secret).status_code == 200
    # The operator is never locked out by an id's failures.
    for n in range(5):
        verify(client, "CP3", f"again-{n}")
    assert verify(client, "CP3", secret).status_code == 429
    assert client.delete("/api/chargepoints/CP3", headers=bearer(OPER)).status_code == 204


def test_one_address_is_locked_out_across_ids_and_tokens(db: Database, clock: FakeClock) -> None:
    client = make_app(db, clock, max_failures_per_ip=4).test_client()
    secret = register(client, "CP5").json["secret"]
    attacker = {"REMOTE_ADDR": "203.0.113.9"}
    for n in range(3):
        assert verify(client, f"X{n}", "guess", ip="203.0.113.9").status_code == 401
    wrong_token = client.get("/api/chargepoints", headers=bearer("guess"), environ_base=attacker)
    assert wrong_token.status_code == 401
    assert verify(client, "CP5", secret, ip="203.0.113.9").status_code == 429
    operator = client.get("/api/chargepoints", headers=bearer(OPER), environ_base=attacker)
    assert operator.status_code == 429  # no oracle for the operator token either
    assert verify(client, "CP5", secret, ip="198.51.100.1").status_code == 200
    ip_lockouts = [e for e in events(db) if e["type"] == "registry.lockout"]
    assert [(e["data"]["scope"], e["data"]["key"]) for e in ip_lockouts] == [("ip", "203.0.113.9")]


def test_racing_registrations_and_rotations_issue_one_secret(
    db: Database, clock: FakeClock
) -> None:
    app = make_app(db, clock)
    results: list[int] = []

    def run(call: Any) -> None:
        results.append(call(app.test_client()).status_code)

    def race(call: Any, n: int = 6) -> list[int]:
        results.clear()
        threads = [threading.Thread(target=run, args=(call,)) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sorted(results)

    assert race(lambda c: register(c, "CP6")) == [201, 409, 409, 409, 409, 409]
    secret = (
        app.test_client().post("/api/chargepoints/CP6/rotate", headers=bearer(OPER)).json["secret"]
    )
    codes = race(lambda c: c.post("/api/chargepoints/CP6/rotate", headers=bearer(secret)), n=4)
    assert codes == [200, 401, 401, 401]
    with db.transaction() as s:
        cp = s.get(ChargePoint, "CP6")
        assert cp is not None and cp.price_eur_kwh == Decimal("0.30")


def test_an_unreachable_database_is_a_503_not_a_500(tmp_path: Path, clock: FakeClock) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'evcharging.db'}")
    client = make_app(Database(engine, sessionmaker(engine)), clock).test_client()
    for response in (
        client.get("/api/health"),
        register(client, "CP7"),
        verify(client, "CP7", "whatever"),
        client.get("/api/chargepoints/CP7"),
    ):
        assert response.status_code == 503
        assert response.json["error"] == "database_unavailable"
        assert response.headers["Retry-After"] == "5"
    engine.dispose()
