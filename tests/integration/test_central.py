"""Central as a real process, with scripted monitors, engines and drivers on real sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from central.drivers import add_driver
from common.client import AuthenticationFailed
from common.protocol.framing import ACK, NACK
from common.protocol.messages import MessageType
from tests.support.central import (
    TEST_SCRYPT,
    CentralProcess,
    ScriptedCP,
    driver,
    provision_cp,
    start_central,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def central(
    tmp_path: Path, sqlite_url: str, free_port: Callable[[], int]
) -> Iterator[CentralProcess]:
    proc = start_central(tmp_path, sqlite_url, free_port(), free_port())
    yield proc
    proc.proc.stop()


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_happy_path_with_ticket(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1", "Madrid", "0.40")
    d_secret = add_driver(central.db_url, "D1", TEST_SCRYPT)

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
        audit = (await asyncio.to_thread(central.get, "/audit?action=cp.auth_failed")).json()
        assert len(audit["entries"]) == 2
        assert {e["actor"] for e in audit["entries"]} == {"GHOST", "CP1"}
        assert all(e["source_ip"] == "127.0.0.1" for e in audit["entries"])
        assert audit["chain"]["ok"]

    run(scenario())


def test_busy_cp_and_out_of_state_messages_are_refused(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1")
    s1, s2 = (
        add_driver(central.db_url, "D1", TEST_SCRYPT),
        add_driver(central.db_url, "D2", TEST_SCRYPT),
    )

    async def scenario() -> None:
        cp = await ScriptedCP("CP1", secret, central.addr).connect()
        await central.wait_state("CP1", "ACTIVATED")
        cp.telemetry("no-such-session", 1.0)  # telemetry while not supplying
        assert cp.engine is not None
        error = await cp.engine.recv_until({MessageType.ERROR}, 5)
        assert "not supplying" in error.body["reason"]
        d1, d2 = await driver(central.addr, "D1", s1), await driver(central.addr, "D2", s2)
        d1.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
        session_id = await cp.accept_authorization()
        await d1.recv_until({MessageType.CHARGE_AUTHORIZED}, 5)
        d2.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
        denied = await d2.recv_until({MessageType.CHARGE_DENIED}, 5)
        assert denied.body["reason"] == "charge point is busy"
        d2.send(MessageType.CHARGE_REQUEST, {"cp_id": "NOPE"})
        denied = await d2.recv_until({MessageType.CHARGE_DENIED}, 5)
        assert denied.body["reason"] == "unknown charge point"
        cp.plug(session_id)
        await central.wait_state("CP1", "SUPPLYING")
        for link in (d1, d2):
            await link.close()
        await cp.close()

    run(scenario())


def test_fault_mid_supply_ends_session_with_partial_ticket(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1", price="0.50")
    d_secret = add_driver(central.db_url, "D1", TEST_SCRYPT)

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


def test_monitor_silence_makes_cp_disconnected(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1")

    async def scenario() -> None:
        cp = await ScriptedCP("CP1", secret, central.addr).connect()
        await central.wait_state("CP1", "ACTIVATED")
        cp.beating = False
        await central.wait_state("CP1", "DISCONNECTED", timeout=6)
        await cp.close()

    run(scenario())


def test_garbage_is_nacked_and_floods_are_dropped(central: CentralProcess) -> None:
    secret = provision_cp(central.db_url, "CP1")

    async def scenario() -> None:
        cp = await ScriptedCP("CP1", secret, central.addr).connect()
        await central.wait_state("CP1", "ACTIVATED")
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
        await central.wait_state("CP1", "ACTIVATED")
        await cp.close()

    run(scenario())
