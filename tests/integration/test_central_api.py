"""API_Central: every endpoint, with the 400/401/404/409 cases a client can hit."""

from __future__ import annotations

import asyncio
import csv
import io

import pytest
import requests

from central.drivers import add_driver
from common.protocol.messages import MessageType
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.central import CentralProcess, ScriptedCP, provision_cp
from tests.support.scrypt import CHEAP_SCRYPT

pytestmark = pytest.mark.integration


def _auth(central: CentralProcess, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or central.token}"}


def test_operator_reads_describe_the_network(central: CentralProcess) -> None:
    provision_cp(central.db_url, "CP1", "Madrid", "0.35")
    add_driver(central.db_url, "D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)
    asyncio.run(central.wait_state("CP1", "DISCONNECTED"))
    health = central.get("/health").json()
    assert health["status"] == "ok" and health["chargepoints"]["DISCONNECTED"] == 1
    cps = central.get("/chargepoints").json()["chargepoints"]
    assert [(c["id"], c["location"], c["price_eur_kwh"]) for c in cps] == [("CP1", "Madrid", 0.35)]
    assert central.get("/chargepoints/NOPE").status_code == 404
    assert central.get("/chargepoints/NOPE").json()["error"] == "unknown_cp"
    drivers = central.get("/drivers").json()["drivers"]
    assert [(d["id"], d["connected"]) for d in drivers] == [("D1", False)]
    assert central.get("/sessions").json() == {"sessions": []}
    stats = central.get("/stats").json()
    assert stats["revenue_eur"] == 0 and stats["by_state"]["DISCONNECTED"] == 1
    assert central.get("/weather").json() == {"alerts": [], "readings": {}}
    spec = central.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    for path in ("/api/chargepoints/{cp_id}/price", "/api/sessions", "/api/audit.csv"):
        assert path in spec["paths"]
    assert central.get("/nowhere").json()["error"] == "not_found"


def test_writes_need_the_operator_token(shared_central: CentralProcess) -> None:
    central = shared_central
    provision_cp(central.db_url, "WRITES1")
    asyncio.run(central.wait_state("WRITES1", "DISCONNECTED"))
    writes = [
        ("put", "/chargepoints/WRITES1/price", {"price_eur_kwh": 1}),
        ("post", "/chargepoints/WRITES1/stop", None),
        ("post", "/chargepoints/WRITES1/resume", None),
        ("post", "/chargepoints/WRITES1/revoke-key", None),
        ("post", "/chargepoints/stop-all", None),
        ("post", "/chargepoints/resume-all", None),
        ("post", "/sessions", {"driver_id": "D1", "cp_id": "WRITES1"}),
        ("post", "/sessions/x/stop", None),
        ("post", "/weather/alerts", {"location": "Madrid"}),
        ("delete", "/weather/alerts/Madrid", None),
    ]
    for method, path, body in writes:
        for headers in ({}, _auth(central, "wrong-token")):
            r = requests.request(method, central.api + path, json=body, headers=headers, timeout=10)
            assert r.status_code == 401, (method, path, r.status_code)
            assert r.json()["error"] == "unauthorized"
            assert r.headers["WWW-Authenticate"] == "Bearer"
    assert central.cp("WRITES1")["stopped_by"] == []


def test_price_commands_and_errors(shared_central: CentralProcess) -> None:
    central = shared_central
    provision_cp(central.db_url, "PRICE1")
    asyncio.run(central.wait_state("PRICE1", "DISCONNECTED"))
    url = central.api + "/chargepoints/PRICE1/price"
    r = requests.put(url, json={"price_eur_kwh": 0.55}, headers=_auth(central), timeout=10)
    assert r.status_code == 200 and r.json()["price_eur_kwh"] == 0.55
    assert central.cp("PRICE1")["price_eur_kwh"] == 0.55
    for bad in ({"price_eur_kwh": -1}, {"price_eur_kwh": "abc"}, {}, [1]):
        r = requests.put(url, json=bad, headers=_auth(central), timeout=10)
        assert r.status_code == 400, bad
    r = requests.put(url, data="price=1", headers=_auth(central), timeout=10)
    assert r.status_code == 415
    r = requests.put(
        url,
        data="{not json",
        headers={**_auth(central), "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 400
    assert central.post("/chargepoints/NOPE/stop").status_code == 404
    assert central.post("/chargepoints/PRICE1/explode").status_code == 404
    assert central.post("/sessions/no-such-session/stop").status_code == 404
    big = {"price_eur_kwh": 1, "pad": "x" * 100_000}
    assert requests.put(url, json=big, headers=_auth(central), timeout=10).status_code == 413


def test_sessions_endpoint_201_400_404_409(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1", "Madrid", "0.40")
    provision_cp(central.db_url, "CP2")
    add_driver(central.db_url, "D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)

    async def scenario() -> None:
        cp = await ScriptedCP("CP1", secret, central.addr).connect()
        await central.wait_state("CP1", "ACTIVATED")
        post = central.post
        r = await asyncio.to_thread(post, "/sessions", {"cp_id": "NOPE", "driver_id": "D1"})
        assert r.status_code == 404
        r = await asyncio.to_thread(post, "/sessions", {"driver_id": "D1"})
        assert r.status_code == 400
        r = await asyncio.to_thread(post, "/sessions", {"cp_id": "CP2", "driver_id": "D1"})
        assert r.status_code == 409 and "disconnected" in r.json()["message"]
        r = await asyncio.to_thread(
            post, "/sessions", {"cp_id": "CP1", "driver_id": "D1", "target_kwh": -3}
        )
        assert r.status_code == 400
        accept = asyncio.create_task(cp.accept_authorization())
        r = await asyncio.to_thread(post, "/sessions", {"cp_id": "CP1", "driver_id": "D1"})
        session_id = await accept
        assert r.status_code == 201 and r.json()["session_id"] == session_id
        r = await asyncio.to_thread(post, "/sessions", {"cp_id": "CP1", "driver_id": "D2"})
        assert r.status_code == 409 and r.json()["message"] == "charge point is busy"
        cp.plug(session_id)
        await central.wait_state("CP1", "SUPPLYING")
        cp.telemetry(session_id, 2.0)
        await asyncio.sleep(0.3)
        active = (await asyncio.to_thread(central.get, "/sessions?status=supplying")).json()
        assert [(s["session_id"], s["kwh"]) for s in active["sessions"]] == [(session_id, 2.0)]
        r = await asyncio.to_thread(post, f"/sessions/{session_id}/stop")
        assert r.status_code == 200 and r.json()["total_eur"] == 0.8
        assert cp.engine is not None
        await cp.engine.recv_until({MessageType.STOP}, 5)
        await central.wait_state("CP1", "ACTIVATED")
        mine = (await asyncio.to_thread(central.get, "/sessions?driver_id=D1")).json()
        assert [s["status"] for s in mine["sessions"]] == ["ended"]
        assert (await asyncio.to_thread(central.get, "/sessions?cp_id=CP2")).json() == {
            "sessions": []
        }
        stats = (await asyncio.to_thread(central.get, "/stats")).json()
        assert stats["per_cp"] == [{"cp_id": "CP1", "sessions": 1, "kwh": 2.0, "eur": 0.8}]
        assert len(stats["per_day"]) == 1
        await cp.close()

    asyncio.run(scenario())


def test_weather_endpoints(central: CentralProcess) -> None:
    provision_cp(central.db_url, "CP1", "Oslo")
    asyncio.run(central.wait_state("CP1", "DISCONNECTED"))
    r = central.post("/weather/alerts", {"location": "Oslo", "temperature_c": -2})
    assert r.status_code == 201 and r.json()["affected"] == 1
    assert central.post("/weather/alerts", {"temperature_c": -2}).status_code == 400
    assert (
        central.post("/weather/alerts", {"location": "Oslo", "temperature_c": "cold"}).status_code
        == 400
    )
    r = central.post("/weather/readings", {"location": "Oslo", "temperature_c": -2.5})
    assert r.status_code == 202
    r = central.post(
        "/weather/readings", {"location": "Lima", "status": "UNKNOWN", "reason": "city not found"}
    )
    assert r.status_code == 202
    weather = central.get("/weather").json()
    assert weather["alerts"] == ["Oslo"]
    assert weather["readings"]["Oslo"] == {
        "temperature_c": -2.5,
        "status": "ok",
        "reason": None,
        "alert": True,
    }
    assert weather["readings"]["Lima"]["status"] == "UNKNOWN"
    assert weather["readings"]["Lima"]["reason"] == "city not found"
    assert central.cp("CP1")["stopped_by"] == ["weather"]
    delete = requests.delete(
        central.api + "/weather/alerts/Oslo", headers=_auth(central), timeout=10
    )
    assert delete.status_code == 200
    again = requests.delete(
        central.api + "/weather/alerts/Oslo", headers=_auth(central), timeout=10
    )
    assert again.status_code == 404
    assert central.cp("CP1")["stopped_by"] == []


def test_audit_filters_and_csv(central: CentralProcess) -> None:
    provision_cp(central.db_url, "CP1")
    provision_cp(central.db_url, "CP2")
    asyncio.run(central.wait_state("CP2", "DISCONNECTED"))
    central.post("/chargepoints/CP1/stop")
    central.post("/chargepoints/CP2/stop")
    audit = central.get("/audit?action=operator.command&cp_id=CP2").json()
    assert [e["cp_id"] for e in audit["entries"]] == ["CP2"]
    assert audit["entries"][0]["actor"] == "operator"
    assert audit["entries"][0]["source_ip"] == "127.0.0.1"
    assert audit["chain"]["ok"] is True
    assert central.get("/audit?actor=nobody").json()["entries"] == []
    assert central.get("/audit?since=2000-01-01T00:00:00%2B00:00").json()["entries"]
    assert central.get("/audit?since=yesterday").status_code == 400
    assert central.get("/audit?limit=0").status_code == 400
    r = central.get("/audit.csv?action=operator.command")
    assert r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert sorted(row["cp_id"] for row in rows) == ["CP1", "CP2"]
