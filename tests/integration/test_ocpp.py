"""OCPP 1.6J chargers on a real Central (``--ocpp``), the peer being the ``ocpp`` package's
own ``ChargePoint`` (``ocpp_sim.SimCharger``) or a raw WebSocket for malformed frames.

One Central serves the module; each test has its own charge points (and locations),
registered in the shared database as the Registry would.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import ssl
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from ocpp.v16 import call
from websockets.exceptions import InvalidStatus

from central.drivers import add_driver
from common.db import open_database
from common.db.models import ChargePoint, utcnow
from common.procs import ServiceProcess
from common.tcp import free_port
from registry.tls import ensure_certificates
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.central import CentralProcess, provision_cp, start_central
from tests.support.ocpp import call_raw, new_id, open_ws, sim_charger
from tests.support.scrypt import CHEAP_SCRYPT

pytestmark = pytest.mark.integration

PROGRESS = re.compile(r"charging (\w+): \d+\.\d kW \d+\.\d{3} kWh")


def _sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on its own event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


@pytest.fixture(scope="module")
def central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralProcess]:
    tmp = tmp_path_factory.mktemp("ocpp")
    proc = start_central(
        tmp, f"sqlite:///{tmp / 'ev.db'}", free_port(), free_port(), ocpp_port=free_port()
    )
    yield proc
    proc.proc.stop()


def _url(central: CentralProcess) -> str:
    assert central.ocpp_url is not None
    return central.ocpp_url


async def _until(check: Any, what: str, timeout: float = 10) -> Any:
    """Poll ``check()`` (sync or a coroutine function) until it is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def _sessions(central: CentralProcess, cp_id: str) -> list[dict[str, Any]]:
    response = central.get("/sessions", params={"cp_id": cp_id})
    response.raise_for_status()
    body = response.json()
    return list(body["sessions"] if isinstance(body, dict) else body)


def _audit(central: CentralProcess, **params: str) -> list[dict[str, Any]]:
    response = central.get("/audit", params={"limit": "500", **params})
    response.raise_for_status()
    body = response.json()
    return list(body["entries"] if isinstance(body, dict) else body)


async def _start_session(central: CentralProcess, driver_id: str, cp_id: str) -> str:
    response = await asyncio.to_thread(
        central.post, "/sessions", {"driver_id": driver_id, "cp_id": cp_id}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["session_id"])


@_sync
async def test_driver_charges_at_an_ocpp_charger(central: CentralProcess, tmp_path: Path) -> None:
    """Boot, heartbeat, ``ev-driver request`` → RemoteStart, meter values each second,
    RemoteStop at the target, the ticket; the board shows the charger throughout."""
    secret = provision_cp(central.db_url, "OC1", "Toledo")
    driver_secret = add_driver(central.db_url, "D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)
    async with sim_charger(_url(central), "OC1", secret) as charger:
        cp = await central.wait_state("OC1", "ACTIVATED")
        assert cp["monitor_connected"] and cp["engine_connected"]
        beat = await charger.call(call.Heartbeat())
        assert beat.current_time.endswith("Z")
        args = ["--id", "D1", "--central", str(central.addr), "request", "OC1", "--kwh", "0.5"]
        driver = ServiceProcess(
            [sys.executable, "-m", "driver", "--no-tty", *args],
            env={"EV_DRIVER_SECRET": driver_secret},
            log_path=tmp_path / "driver.log",
            name="driver",
        ).start()
        try:
            code = await asyncio.to_thread(driver.wait, 30)
        finally:
            driver.stop()
        output = driver.output()
        assert code == 0, output
        assert len(PROGRESS.findall(output)) >= 2, output  # a meter value every second
        assert re.search(r"ticket OC1: 0\.\d{3} kWh x 0\.40 €/kWh = .*\(target_reached\)", output)
        await _until(lambda: charger.tickets, "the charger's StopTransaction")
    [session] = _sessions(central, "OC1")
    assert session["driver_id"] == "D1" and session["status"] == "ended"
    assert session["reason"] == "target_reached" and session["kwh"] >= 0.5
    await central.wait_state("OC1", "DISCONNECTED")
    logins = _audit(central, cp_id="OC1", action="cp.authenticated")
    assert logins and logins[0]["params"]["role"] == "ocpp"


@_sync
async def test_fault_ends_the_supply_and_breaks_the_cp(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "OC2", "Cuenca")
    add_driver(central.db_url, "D2", CHEAP_SCRYPT, TEST_AUDIT_KEYS)
    async with sim_charger(_url(central), "OC2", secret) as charger:
        await central.wait_state("OC2", "ACTIVATED")
        session_id = await _start_session(central, "D2", "OC2")
        await central.wait_state("OC2", "SUPPLYING")
        await _until(lambda: central.cp("OC2")["session"]["kwh"] > 0, "metered energy")
        await charger.fault("ground failure")
        cp = await central.wait_state("OC2", "BROKEN")
        assert cp["session"] is None and "OtherError" in cp["fault"]
        ended = await _until(
            lambda: [s for s in _sessions(central, "OC2") if s["status"] == "ended"], "the ticket"
        )
        assert [(s["session_id"], s["reason"]) for s in ended] == [(session_id, "fault")]
        await charger.recover()
        await central.wait_state("OC2", "ACTIVATED")


@_sync
async def test_operator_stop_and_resume(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "OC3", "Soria")
    add_driver(central.db_url, "D3", CHEAP_SCRYPT, TEST_AUDIT_KEYS)
    async with sim_charger(_url(central), "OC3", secret) as charger:
        await central.wait_state("OC3", "ACTIVATED")
        await _start_session(central, "D3", "OC3")
        await central.wait_state("OC3", "SUPPLYING")
        response = await asyncio.to_thread(central.post, "/chargepoints/OC3/stop")
        assert response.status_code == 200, response.text
        cp = await central.wait_state("OC3", "STOPPED")
        assert cp["stopped_by"] == ["operator"]
        # RemoteStopTransaction ended the charge; ChangeAvailability took it out of service.
        await _until(lambda: charger.tickets and not charger.operative, "the charger to stop")
        assert charger.status == "Unavailable"
        [session] = _sessions(central, "OC3")
        assert session["reason"] == "stopped_by_operator"
        response = await asyncio.to_thread(central.post, "/chargepoints/OC3/resume")
        assert response.status_code == 200, response.text
        await central.wait_state("OC3", "ACTIVATED")
        await _until(lambda: charger.operative and charger.status == "Available", "Operative")


@_sync
async def test_weather_alert_stops_and_clearing_restores(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "OC4", "Teruel")
    async with sim_charger(_url(central), "OC4", secret) as charger:
        await central.wait_state("OC4", "ACTIVATED")
        response = await asyncio.to_thread(
            central.post, "/weather/alerts", {"location": "Teruel", "temperature_c": -5}
        )
        assert response.status_code in (200, 201), response.text
        cp = await central.wait_state("OC4", "STOPPED")
        assert cp["stopped_by"] == ["weather"]
        await _until(lambda: not charger.operative, "ChangeAvailability Inoperative")
        response = await asyncio.to_thread(
            requests.delete,
            f"{central.api}/weather/alerts/Teruel",
            headers={"Authorization": f"Bearer {central.token}"},
            timeout=10,
        )
        assert response.status_code in (200, 204), response.text
        await central.wait_state("OC4", "ACTIVATED")
        await _until(lambda: charger.operative, "ChangeAvailability Operative")


@_sync
async def test_unknown_wrong_and_borrowed_credentials_are_refused(
    central: CentralProcess,
) -> None:
    secret = provision_cp(central.db_url, "OC5", "Avila")
    cases = [
        ("GHOST", "whatever-secret", None),  # not registered
        ("OC5", "not-the-secret", None),  # wrong secret
        ("OC6", secret, "OC5"),  # OC5's credentials at another charge box's path
        ("OC5", None, None),  # no credentials
    ]
    for cp_id, password, user in cases:
        with pytest.raises(InvalidStatus) as refused:
            async with open_ws(_url(central), cp_id, password, user=user):
                pass
        assert refused.value.response.status_code == 401, (cp_id, user)
    with pytest.raises(InvalidStatus) as refused:
        async with open_ws(_url(central), "OC5", secret, subprotocols=["ocpp2.0.1"]):
            pass
    assert refused.value.response.status_code == 400
    assert b"ocpp1.6" in refused.value.response.body
    wanted = {
        ("GHOST", "unknown or deregistered charge point"),
        ("OC5", "bad secret"),
        ("OC6", "credentials name another id"),
        ("OC5", "no credentials"),
    }

    def audited() -> bool:
        failures = _audit(central, action="cp.auth_failed")
        return wanted <= {(e["cp_id"], e["params"]["reason"]) for e in failures}

    await _until(audited, "the refusals in the audit log")
    assert central.cp("OC5")["state"] in ("UNKNOWN", "DISCONNECTED")  # never let in


def _deregister(url: str, cp_id: str) -> None:
    """What the Registry's DELETE /api/chargepoints/<id> does to the shared database."""
    db = open_database(url, audit_keys=TEST_AUDIT_KEYS)
    with db.transaction() as session:
        row = session.get(ChargePoint, cp_id)
        assert row is not None
        row.deregistered_at = utcnow()
    db.dispose()


@_sync
async def test_guessing_a_secret_is_slowed_down(central: CentralProcess) -> None:
    """After 3 wrong secrets for an id, even the right one waits (429, Retry-After)."""
    secret = provision_cp(central.db_url, "OG1", "Palencia")
    for _ in range(3):
        with pytest.raises(InvalidStatus) as refused:
            async with open_ws(_url(central), "OG1", "a-guess"):
                pass
        assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as refused:
        async with open_ws(_url(central), "OG1", secret):
            pass
    assert refused.value.response.status_code == 429
    wait = int(refused.value.response.headers["Retry-After"])
    assert 1 <= wait <= 2
    await asyncio.sleep(wait)
    async with sim_charger(_url(central), "OG1", secret):
        await central.wait_state("OG1", "ACTIVATED")


@_sync
async def test_a_deregistered_charger_is_cut_off_and_refused(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "OD1", "Zamora")
    async with sim_charger(_url(central), "OD1", secret) as charger:
        await central.wait_state("OD1", "ACTIVATED")
        await asyncio.to_thread(_deregister, central.db_url, "OD1")
        await _until(lambda: charger.connection.close_code is not None, "the cut", timeout=10)
    with pytest.raises(InvalidStatus) as refused:
        async with open_ws(_url(central), "OD1", secret):
            pass
    assert refused.value.response.status_code == 401

    def audited() -> bool:
        failures = _audit(central, action="cp.auth_failed", cp_id="OD1")
        return any(e["params"]["reason"].startswith("unknown or deregistered") for e in failures)

    await _until(audited, "the refusal in the audit log")


@_sync
async def test_malformed_calls_get_the_spec_call_error(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "OC7", "Segovia")
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    cases = [
        ("StatusNotification", {**status, "status": "Exploded"}, "PropertyConstraintViolation"),
        ("StatusNotification", {**status, "colour": "red"}, "FormationViolation"),
        ("StatusNotification", {"connectorId": 1, "status": "Available"}, "ProtocolError"),
        ("StatusNotification", {**status, "connectorId": "one"}, "TypeConstraintViolation"),
        ("MakeCoffee", {}, "NotImplemented"),
        ("RemoteStartTransaction", {"idTag": "D1"}, "NotSupported"),
        ("Heartbeat", [], "FormationViolation"),
        (
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": 5,
                "meterValue": [
                    {"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "lots"}]}
                ],
            },
            "PropertyConstraintViolation",
        ),
    ]
    async with open_ws(_url(central), "OC7", secret) as ws:
        for action, payload, code in cases:
            uid = new_id()
            answer = await call_raw(ws, [2, uid, action, payload], uid)
            assert answer[0] == 4 and answer[2] == code, (action, payload, answer)
        answer = await call_raw(ws, [2, "short", "Heartbeat"], "short")  # no payload
        assert answer[:3] == [4, "short", "FormationViolation"]
        await ws.send("this is not JSON")  # no id to answer: ignored
        uid = new_id()
        answer = await call_raw(ws, [2, uid, "Heartbeat", {}], uid)
        assert answer[0] == 3 and "currentTime" in answer[2]  # the connection lives on
    assert "Traceback" not in central.proc.output()


@_sync
async def test_a_charger_acts_only_for_itself(central: CentralProcess) -> None:
    """A charger cannot meter or stop another CP's session, bill a driver by tag, or flood."""
    secret_a = provision_cp(central.db_url, "OC8", "Huesca")
    secret_b = provision_cp(central.db_url, "OC9", "Huesca")
    add_driver(central.db_url, "D9", CHEAP_SCRYPT, TEST_AUDIT_KEYS)
    async with (
        sim_charger(_url(central), "OC9", secret_b) as victim,
        open_ws(_url(central), "OC8", secret_a) as ws,
    ):
        await central.wait_state("OC8", "ACTIVATED")
        await _start_session(central, "D9", "OC9")
        await _until(lambda: victim.transaction, "the victim's transaction")
        assert victim.transaction is not None
        theirs = victim.transaction.id
        meter = [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "999000"}]}]
        uid = new_id()
        answer = await call_raw(
            ws,
            [
                2,
                uid,
                "MeterValues",
                {"connectorId": 1, "transactionId": theirs, "meterValue": meter},
            ],
            uid,
        )
        assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation", answer
        uid = new_id()
        stop = {"meterStop": 999000, "timestamp": "2026-01-01T00:00:00Z", "transactionId": theirs}
        answer = await call_raw(ws, [2, uid, "StopTransaction", stop], uid)
        assert answer[0] == 3  # acknowledged, so the charger forgets it; nothing settled
        live = central.cp("OC9")["session"]
        assert live is not None and live["driver_id"] == "D9" and live["kwh"] < 100
        # A tag at OC8's reader naming driver D9: a local charge, billed to nobody.
        uid = new_id()
        start = {
            "connectorId": 1,
            "idTag": "D9",
            "meterStart": 0,
            "timestamp": "2026-01-01T00:00:00Z",
        }
        answer = await call_raw(ws, [2, uid, "StartTransaction", start], uid)
        assert answer[0] == 3 and answer[2]["idTagInfo"]["status"] == "Accepted", answer
        cp = await central.wait_state("OC8", "SUPPLYING")
        assert cp["session"]["driver_id"] is None
        # Its final reading shrinks: refused, and settled at the energy Central accepted.
        tx = answer[2]["transactionId"]
        meter = [{"timestamp": "2026-01-01T00:00:00Z", "sampledValue": [{"value": "5000"}]}]
        values = {"connectorId": 1, "transactionId": tx, "meterValue": meter}
        uid = new_id()
        assert (await call_raw(ws, [2, uid, "MeterValues", values], uid))[0] == 3
        stop = {"meterStop": 1000, "timestamp": "2026-01-01T00:00:00Z", "transactionId": tx}
        uid = new_id()
        assert (await call_raw(ws, [2, uid, "StopTransaction", stop], uid))[0] == 3
        [local] = _sessions(central, "OC8")
        assert local["driver_id"] is None and local["kwh"] == 5.0 and local["status"] == "ended"
        # A flood: refused with GenericError beyond the rate, the connection survives.
        frames = [[2, f"f{i}", "Heartbeat", {}] for i in range(150)]
        for frame in frames:
            await ws.send(json.dumps(frame))
        codes: list[str] = []
        async with asyncio.timeout(10):
            while len(codes) < len(frames):
                message = json.loads(await ws.recv())
                if message[0] == 2:
                    await ws.send(json.dumps([3, message[1], {"status": "Accepted"}]))
                elif str(message[1]).startswith("f"):
                    codes.append(message[2] if message[0] == 4 else "ok")
        assert "GenericError" in codes and "ok" in codes

    def flood_audited() -> bool:
        return any("call flood" in str(e["params"]) for e in _audit(central, cp_id="OC8"))

    await _until(flood_audited, "the flood in the audit log")


@_sync
async def test_a_transaction_open_when_central_restarts_is_settled(tmp_path: Path) -> None:
    """Central is killed mid-charge; when the charger is back, the session is settled at
    the energy last metered (the charger's transaction is not resumed: docs/ocpp.md)."""
    url, ports = f"sqlite:///{tmp_path / 'ev.db'}", (free_port(), free_port(), free_port())
    central = start_central(tmp_path, url, *ports[:2], ocpp_port=ports[2], name="central-1")
    try:
        secret = provision_cp(url, "OR1", "Burgos")
        add_driver(url, "DR1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)
        async with sim_charger(_url(central), "OR1", secret, speed=10.0):
            await central.wait_state("OR1", "ACTIVATED")
            session_id = await _start_session(central, "DR1", "OR1")
            await _until(lambda: central.cp("OR1")["session"]["kwh"] > 0, "metered energy")
            await asyncio.sleep(0.5)  # let the progress reach the database
            central.proc.kill()
    finally:
        central.proc.stop()
    central = start_central(tmp_path, url, *ports[:2], ocpp_port=ports[2], name="central-2")
    try:
        [open_row] = _sessions(central, "OR1")
        assert open_row["status"] == "supplying" and open_row["kwh"] > 0
        async with sim_charger(_url(central), "OR1", secret):
            await central.wait_state("OR1", "ACTIVATED")
            ended = await _until(
                lambda: [s for s in _sessions(central, "OR1") if s["status"] == "ended"],
                "the orphan settled",
            )
        assert [(s["session_id"], s["reason"]) for s in ended] == [(session_id, "lost")]
        assert ended[0]["kwh"] == open_row["kwh"]
    finally:
        central.proc.stop()


@_sync
async def test_security_profile_2_over_tls(tmp_path: Path) -> None:
    tls_files = ensure_certificates(tmp_path / "tls")
    assert tls_files.ca is not None
    central = start_central(
        tmp_path,
        f"sqlite:///{tmp_path / 'ev.db'}",
        free_port(),
        free_port(),
        ocpp_port=free_port(),
        ocpp_tls=(tls_files.cert, tls_files.key),
        name="central-tls",
    )
    try:
        secret = provision_cp(central.db_url, "OT1", "Leon")
        assert _url(central).startswith("wss://")
        trusted = ssl.create_default_context(cafile=str(tls_files.ca))
        async with sim_charger(_url(central), "OT1", secret, tls=trusted):
            await central.wait_state("OT1", "ACTIVATED")
        untrusted = ssl.create_default_context()  # the system CAs do not vouch for it
        with pytest.raises(ssl.SSLCertVerificationError):
            async with open_ws(_url(central), "OT1", secret, tls=untrusted):
                pass
    finally:
        central.proc.stop()
