"""Central as a real process, with scripted monitors, engines and drivers on real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from central.drivers import add_driver
from common.client import AuthenticationFailed, AuthenticationThrottled
from common.protocol.framing import ACK, NACK
from common.protocol.messages import MessageType
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.central import (
    CentralProcess,
    ScriptedCP,
    driver,
    provision_cp,
    start_central,
)
from tests.support.scrypt import CHEAP_SCRYPT

pytestmark = pytest.mark.integration


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_happy_path_with_ticket(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1", "Madrid", "0.40")
    d_secret = add_driver(central.db_url, "D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)

    async def scenario() -> None:
        await central.wait_state("CP1", "DISCONNECTED")  # registered, no monitor yet
        cp = await ScriptedCP("CP1", secret, central.addr).connect()
        await central.wait_state("CP1", "ACTIVATED")
        drv = await driver(central.addr, "D1", d_secret)
        drv.send(MessageType.LIST_CPS, {})
        listing = await drv.recv_until({MessageType.CP_LIST}, 5)
        assert [c["id"] for c in listing.body["cps"]] == ["CP1"]
        drv.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
        session_id = await cp.accept_authorization()
        authorized = await drv.recv_until({MessageType.CHARGE_AUTHORIZED}, 5)
        assert authorized.body["session_id"] == session_id
        cp.plug(session_id)
        await drv.recv_until({MessageType.SUPPLY_STARTED}, 5)
        state = await central.wait_state("CP1", "SUPPLYING")
        assert state["session"]["driver_id"] == "D1"
        for kwh in (0.5, 1.0, 2.5):
            cp.telemetry(session_id, kwh)
            progress = await drv.recv_until({MessageType.TELEMETRY}, 5)
            assert progress.body["kwh"] == kwh
        assert progress.body["eur"] == 1.0  # 2.5 kWh at 0.40
        engine_ticket = await cp.unplug(session_id, 2.5)
        ticket = await drv.recv_until({MessageType.TICKET}, 5)
        assert ticket.body == engine_ticket.body
        assert ticket.body["kwh"] == 2.5 and ticket.body["total_eur"] == 1.0
        assert ticket.body["price_eur_kwh"] == 0.4 and ticket.body["driver_id"] == "D1"
        await central.wait_state("CP1", "ACTIVATED")
        stats = (await asyncio.to_thread(central.get, "/stats")).json()
        assert stats["revenue_eur"] == 1.0 and stats["sessions_finished"] == 1
        await drv.close()
        await cp.close()

    run(scenario())


def test_unregistered_and_wrong_secret_are_denied_and_audited(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1")

    async def scenario() -> None:
        with pytest.raises(AuthenticationFailed):
            await ScriptedCP("GHOST", secret, central.addr).connect()
        with pytest.raises(AuthenticationFailed):
            await ScriptedCP("CP1", "not-the-secret", central.addr).connect()
        for _ in range(50):  # the audit entries are written just after the answers
            audit = (await asyncio.to_thread(central.get, "/audit?action=cp.auth_failed")).json()
            if len(audit["entries"]) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(audit["entries"]) == 2
        assert {e["actor"] for e in audit["entries"]} == {"GHOST", "CP1"}
        assert all(e["source_ip"] == "127.0.0.1" for e in audit["entries"])
        assert audit["chain"]["ok"]

    run(scenario())


def test_busy_cp_and_out_of_state_messages_are_refused(shared_central: CentralProcess) -> None:
    central = shared_central
    secret = provision_cp(central.db_url, "BUSY1")
    s1, s2 = (
        add_driver(central.db_url, "BUSY-D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS),
        add_driver(central.db_url, "BUSY-D2", CHEAP_SCRYPT, TEST_AUDIT_KEYS),
    )

    async def scenario() -> None:
        cp = await ScriptedCP("BUSY1", secret, central.addr).connect()
        await central.wait_state("BUSY1", "ACTIVATED")
        cp.telemetry("no-such-session", 1.0)  # telemetry while not supplying
        assert cp.engine is not None
        error = await cp.engine.recv_until({MessageType.ERROR}, 5)
        assert "not supplying" in error.body["reason"]
        d1, d2 = (
            await driver(central.addr, "BUSY-D1", s1),
            await driver(central.addr, "BUSY-D2", s2),
        )
        d1.send(MessageType.CHARGE_REQUEST, {"cp_id": "BUSY1"})
        session_id = await cp.accept_authorization()
        await d1.recv_until({MessageType.CHARGE_AUTHORIZED}, 5)
        d2.send(MessageType.CHARGE_REQUEST, {"cp_id": "BUSY1"})
        denied = await d2.recv_until({MessageType.CHARGE_DENIED}, 5)
        assert denied.body["reason"] == "charge point is busy"
        d2.send(MessageType.CHARGE_REQUEST, {"cp_id": "NOPE"})
        denied = await d2.recv_until({MessageType.CHARGE_DENIED}, 5)
        assert denied.body["reason"] == "unknown charge point"
        cp.plug(session_id)
        await central.wait_state("BUSY1", "SUPPLYING")
        for link in (d1, d2):
            await link.close()
        await cp.close()

    run(scenario())


def test_fault_mid_supply_ends_session_with_partial_ticket(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1", price="0.50")
    d_secret = add_driver(central.db_url, "D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)

    async def scenario() -> None:
        cp = await ScriptedCP("CP1", secret, central.addr).connect()
        await central.wait_state("CP1", "ACTIVATED")
        drv = await driver(central.addr, "D1", d_secret)
        drv.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
        session_id = await cp.accept_authorization()
        cp.plug(session_id)
        await central.wait_state("CP1", "SUPPLYING")
        cp.telemetry(session_id, 3.0)
        await drv.recv_until({MessageType.TELEMETRY}, 5)
        assert cp.monitor is not None and cp.engine is not None
        cp.engine_ok = False
        cp.monitor.send(MessageType.ENGINE_STATUS, {"ok": False, "reason": "engine KO"})
        stop = await cp.engine.recv_until({MessageType.STOP}, 5)
        assert stop.body["reason"] == "fault"
        ticket = await drv.recv_until({MessageType.TICKET}, 5)
        assert ticket.body["kwh"] == 3.0 and ticket.body["total_eur"] == 1.5
        assert ticket.body["reason"] == "fault"
        broken = await central.wait_state("CP1", "BROKEN")
        assert broken["session"] is None and broken["fault"] == "engine KO"
        # The engine's own final report afterwards does not settle it again.
        late = await cp.unplug(session_id, 3.2)
        assert late.body["total_eur"] == 1.5
        cp.engine_ok = True
        cp.monitor.send(MessageType.ENGINE_STATUS, {"ok": True})
        await central.wait_state("CP1", "ACTIVATED")
        sessions = (await asyncio.to_thread(central.get, "/sessions")).json()["sessions"]
        assert [(s["status"], s["total_eur"]) for s in sessions] == [("ended", 1.5)]
        await drv.close()
        await cp.close()

    run(scenario())


def test_monitor_silence_makes_cp_disconnected(shared_central: CentralProcess) -> None:
    central = shared_central
    secret = provision_cp(central.db_url, "SILENT1")

    async def scenario() -> None:
        cp = await ScriptedCP("SILENT1", secret, central.addr).connect()
        await central.wait_state("SILENT1", "ACTIVATED")
        cp.beating = False
        await central.wait_state("SILENT1", "DISCONNECTED", timeout=6)
        await cp.close()

    run(scenario())


def test_garbage_is_nacked_and_floods_are_dropped(shared_central: CentralProcess) -> None:
    central = shared_central
    secret = provision_cp(central.db_url, "GARBAGE1")

    async def scenario() -> None:
        cp = await ScriptedCP("GARBAGE1", secret, central.addr).connect()
        await central.wait_state("GARBAGE1", "ACTIVATED")
        with socket.create_connection((central.addr.host, central.addr.port), 5) as raw:
            raw.sendall(b"\x02not json\x03\x00")  # bad LRC
            assert raw.recv(1) == bytes([NACK])
            raw.sendall(b"\x02{\x03" + bytes([ord("{")]))  # good frame, bad JSON
            assert raw.recv(1) == bytes([NACK])
            raw.sendall((b"\x02x\x03\x00") * 40)  # a flood: dropped after 20
            raw.settimeout(5)
            received = b""
            while chunk := raw.recv(4096):
                received += chunk
            assert set(received) == {NACK} and 15 < len(received) < 40
        assert ACK != NACK
        # The CP on another connection never noticed.
        await central.wait_state("GARBAGE1", "ACTIVATED")
        await cp.close()

    run(scenario())


def test_operator_stop_and_resume_one_and_all(central: CentralProcess) -> None:
    secrets_ = {cp: provision_cp(central.db_url, cp) for cp in ("CP1", "CP2")}
    d_secret = add_driver(central.db_url, "D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)

    async def scenario() -> None:
        cps = [await ScriptedCP(c, s, central.addr).connect() for c, s in secrets_.items()]
        for c in secrets_:
            await central.wait_state(c, "ACTIVATED")
        drv = await driver(central.addr, "D1", d_secret)
        drv.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
        session_id = await cps[0].accept_authorization()
        cps[0].plug(session_id)
        await central.wait_state("CP1", "SUPPLYING")
        cps[0].telemetry(session_id, 1.2)
        await drv.recv_until({MessageType.TELEMETRY}, 5)
        assert (await asyncio.to_thread(central.post, "/chargepoints/CP1/stop")).status_code == 200
        assert cps[0].engine is not None
        stop = await cps[0].engine.recv_until({MessageType.STOP}, 5)
        assert stop.body["reason"] == "stopped_by_operator"
        ticket = await drv.recv_until({MessageType.TICKET}, 5)
        assert ticket.body["kwh"] == 1.2
        stopped = await central.wait_state("CP1", "STOPPED")
        assert stopped["stopped_by"] == ["operator"]
        await central.wait_state("CP2", "ACTIVATED")
        drv.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
        denied = await drv.recv_until({MessageType.CHARGE_DENIED}, 5)
        assert denied.body["reason"] == "charge point is out of order"
        r = await asyncio.to_thread(central.post, "/chargepoints/stop-all")
        assert r.json() == {"stopped": 2}
        await central.wait_state("CP2", "STOPPED")
        r = await asyncio.to_thread(central.post, "/chargepoints/CP2/resume")
        await central.wait_state("CP2", "ACTIVATED")
        await central.wait_state("CP1", "STOPPED")
        r = await asyncio.to_thread(central.post, "/chargepoints/resume-all")
        assert r.json() == {"resumed": 2}
        await central.wait_state("CP1", "ACTIVATED")
        audit = (await asyncio.to_thread(central.get, "/audit?action=operator.command")).json()
        commands = [e["params"]["command"] for e in reversed(audit["entries"])]
        assert commands == ["stop", "stop", "resume", "resume"]
        await drv.close()
        for cp in cps:
            await cp.close()

    run(scenario())


def test_key_revocation_and_reauthentication(shared_central: CentralProcess) -> None:
    central = shared_central
    secret = provision_cp(central.db_url, "REVOKED1")

    async def scenario() -> None:
        cp = await ScriptedCP("REVOKED1", secret, central.addr).connect()
        await central.wait_state("REVOKED1", "ACTIVATED")
        old_key = cp.monitor.session_key if cp.monitor else b""
        r = await asyncio.to_thread(central.post, "/chargepoints/REVOKED1/revoke-key")
        assert r.status_code == 200 and r.json()["key_status"] == "revoked"
        assert cp.monitor is not None
        await cp.monitor.recv_until({MessageType.KEY_REVOKED}, 5)
        await asyncio.sleep(3)  # longer than the heartbeat timeout: still STOPPED, not grey
        assert (await asyncio.to_thread(central.cp, "REVOKED1"))["state"] == "STOPPED"
        # The engine cannot come back with the revoked key ...
        from common.client import connect
        from common.protocol.handshake import Role

        with pytest.raises(AuthenticationFailed):
            await connect(central.addr, Role.ENGINE, "REVOKED1", session_key=old_key)
        # ... until the monitor re-authenticates with its secret.
        await cp.close()
        cp = await ScriptedCP("REVOKED1", secret, central.addr).connect()
        state = await central.wait_state("REVOKED1", "ACTIVATED")
        assert state["key_status"] == "active" and state["engine_connected"]
        await cp.close()

    run(scenario())


def test_weather_alert_lets_supply_finish_then_stops(central: CentralProcess) -> None:
    secrets_ = {
        "CP1": provision_cp(central.db_url, "CP1", "Oslo"),
        "CP2": provision_cp(central.db_url, "CP2", "Oslo"),
        "CP3": provision_cp(central.db_url, "CP3", "Sevilla"),
    }
    d_secret = add_driver(central.db_url, "D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)

    async def scenario() -> None:
        cps = {c: await ScriptedCP(c, s, central.addr).connect() for c, s in secrets_.items()}
        for c in cps:
            await central.wait_state(c, "ACTIVATED")
        drv = await driver(central.addr, "D1", d_secret)
        drv.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
        session_id = await cps["CP1"].accept_authorization()
        cps["CP1"].plug(session_id)
        await central.wait_state("CP1", "SUPPLYING")
        r = await asyncio.to_thread(
            central.post, "/weather/alerts", {"location": "Oslo", "temperature_c": -3.5}
        )
        assert r.status_code == 201 and r.json()["affected"] == 2
        await central.wait_state("CP2", "STOPPED")
        await asyncio.sleep(0.5)
        assert (await asyncio.to_thread(central.cp, "CP1"))["state"] == "SUPPLYING"
        assert (await asyncio.to_thread(central.cp, "CP3"))["state"] == "ACTIVATED"
        cps["CP1"].telemetry(session_id, 4.0)
        await cps["CP1"].unplug(session_id, 4.0)
        await drv.recv_until({MessageType.TICKET}, 5)
        await central.wait_state("CP1", "STOPPED")
        weather = (await asyncio.to_thread(central.get, "/weather")).json()
        assert weather["alerts"] == ["Oslo"]
        r = await asyncio.to_thread(
            lambda: __import__("requests").delete(
                f"{central.api}/weather/alerts/Oslo",
                headers={"Authorization": f"Bearer {central.token}"},
                timeout=10,
            )
        )
        assert r.status_code == 200
        await central.wait_state("CP1", "ACTIVATED")
        await central.wait_state("CP2", "ACTIVATED")
        await drv.close()
        for cp in cps.values():
            await cp.close()

    run(scenario())


def test_central_killed_and_restarted_settles_nothing_twice(
    tmp_path: Path, sqlite_url: str, free_port: Callable[[], int]
) -> None:
    port, api_port = free_port(), free_port()
    central = start_central(tmp_path, sqlite_url, port, api_port)
    secrets_ = {c: provision_cp(sqlite_url, c) for c in ("CP1", "CP2")}
    d_secrets = {d: add_driver(sqlite_url, d, CHEAP_SCRYPT, TEST_AUDIT_KEYS) for d in ("D1", "D2")}

    async def before_crash() -> tuple[str, str]:
        cps = {c: await ScriptedCP(c, s, central.addr).connect() for c, s in secrets_.items()}
        ids = []
        drivers = []
        for c, d in (("CP1", "D1"), ("CP2", "D2")):
            drv = await driver(central.addr, d, d_secrets[d])
            drivers.append(drv)
            await central.wait_state(c, "ACTIVATED")
            drv.send(MessageType.CHARGE_REQUEST, {"cp_id": c})
            ids.append(await cps[c].accept_authorization())
            await drv.recv_until({MessageType.CHARGE_AUTHORIZED}, 5)
            cps[c].plug(ids[-1])
            await central.wait_state(c, "SUPPLYING")
            cps[c].telemetry(ids[-1], 2.0)
            await drv.recv_until({MessageType.TELEMETRY}, 5)
        await asyncio.sleep(0.5)  # let the progress reach the database
        central.proc.kill()
        for cp in cps.values():
            await cp.close()
        for drv in drivers:
            await drv.close()
        return ids[0], ids[1]

    s1, s2 = asyncio.run(before_crash())
    central = start_central(tmp_path, sqlite_url, port, api_port, name="central-restarted")

    async def after_restart() -> None:
        for c in ("CP1", "CP2"):
            await central.wait_state(c, "DISCONNECTED")
        cp1 = await ScriptedCP("CP1", secrets_["CP1"], central.addr).connect()
        cp2 = await ScriptedCP("CP2", secrets_["CP2"], central.addr).connect()
        await central.wait_state("CP1", "ACTIVATED")
        # CP1 finished while Central was down: its journal reports the final energy.
        t1 = await cp1.unplug(s1, 5.0)
        assert t1.body["kwh"] == 5.0 and t1.body["total_eur"] == 2.0
        again = await cp1.unplug(s1, 5.0)  # a retry after a lost answer
        assert again.body == t1.body
        # CP2 is still charging and says so: it resumes and ends normally.
        assert cp2.engine is not None
        cp2.engine.send(MessageType.STATUS, {"session_id": s2, "supplying": True, "kwh": 2.5})
        await central.wait_state("CP2", "SUPPLYING")
        cp2.telemetry(s2, 3.0)
        t2 = await cp2.unplug(s2, 3.0)
        assert t2.body["kwh"] == 3.0
        sessions = (await asyncio.to_thread(central.get, "/sessions")).json()["sessions"]
        assert sorted((s["session_id"], s["status"]) for s in sessions) == sorted(
            [(s1, "ended"), (s2, "ended")]
        )
        audit = (await asyncio.to_thread(central.get, "/audit?action=session.ended")).json()
        assert sorted(e["params"]["session_id"] for e in audit["entries"]) == sorted([s1, s2])
        await cp1.close()
        await cp2.close()

    try:
        asyncio.run(after_restart())
    finally:
        central.proc.stop()


def test_online_guessing_is_slowed_down_not_locked_out(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1")

    async def scenario() -> None:
        for _ in range(3):  # wrong secrets: refused as such, no delay yet
            with pytest.raises(AuthenticationFailed) as refused:
                await ScriptedCP("CP1", "guess", central.addr).connect()
            assert not isinstance(refused.value, AuthenticationThrottled)
        with pytest.raises(AuthenticationThrottled) as delayed:  # even the right secret waits
            await ScriptedCP("CP1", secret, central.addr).connect()
        assert 1 <= delayed.value.retry_after <= 2
        await asyncio.sleep(delayed.value.retry_after)
        cp = await ScriptedCP("CP1", secret, central.addr).connect()  # then it gets in
        await central.wait_state("CP1", "ACTIVATED")
        await cp.close()
        audit = (await asyncio.to_thread(central.get, "/audit?action=error")).json()
        reasons = [e["params"]["reason"] for e in audit["entries"]]
        assert "login of monitor CP1 delayed 1 s after failed attempts" in reasons

    run(scenario())
