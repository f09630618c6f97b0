"""An OCPP charger on Central's domain with fakes: the translation both ways, and authority.

The charger is an :class:`~central.ocpp.charger.OcppCharger` over a fake WebSocket that
answers Central's calls ``Accepted``; the domain is the fakes' :class:`World`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

from central.ocpp.charger import OcppCharger
from central.ocpp.mapping import transaction_id
from central.ocpp.transactions import Transactions
from central.reads import OpenSession
from central.states import CPState
from tests.unit.central.fakes import START, M, World, fl, run

NOW = "2026-12-04T12:00:00Z"


class Closed(Exception):
    """The fake socket was closed (what websockets' ConnectionClosed is to the charger)."""


class FakeSocket:
    """Frames in through ``inbox``; Central's frames recorded, its calls answered."""

    def __init__(self, answers: dict[str, dict[str, Any]] | None = None) -> None:
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[list[Any]] = []
        self.closed: str | None = None
        self.answers = {"RemoteStartTransaction": {"status": "Accepted"}, **(answers or {})}
        self.refuse_once: set[str] = set()  # actions answered with a CallError, once

    async def recv(self) -> str:
        item = await self.inbox.get()
        if item is None:
            raise Closed
        return item

    async def send(self, text: str) -> None:
        frame = json.loads(text)
        self.sent.append(frame)
        if frame[0] == 2 and frame[2] in self.refuse_once:
            self.refuse_once.discard(frame[2])
            self.inbox.put_nowait(json.dumps([4, frame[1], "GenericError", "not now", {}]))
        elif frame[0] == 2:
            answer = self.answers.get(frame[2], {"status": "Accepted"})
            self.inbox.put_nowait(json.dumps([3, frame[1], answer]))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = reason
        self.inbox.put_nowait(None)

    def calls(self, action: str) -> list[dict[str, Any]]:
        return [f[3] for f in self.sent if f[0] == 2 and f[2] == action]

    async def call(self, action: str, payload: Any) -> list[Any]:
        """A call from the charger; Central's answer (a CallResult or CallError frame)."""
        uid = str(uuid.uuid4())
        self.inbox.put_nowait(json.dumps([2, uid, action, payload]))
        for _ in range(400):
            for frame in self.sent:
                if frame[0] in (3, 4) and frame[1] == uid:
                    return frame
            await asyncio.sleep(0.005)  # schemas are checked in a worker thread
        raise AssertionError(f"no answer to {action}")


@contextlib.asynccontextmanager
async def charger(
    w: World, cp_id: str = "CP1", refuse_once: tuple[str, ...] = (), **answers: Any
) -> AsyncIterator[FakeSocket]:
    sock = FakeSocket(answers)
    sock.refuse_once.update(refuse_once)
    oc = OcppCharger(cp_id, sock, w.net, Transactions(), "192.0.2.9")
    task = asyncio.create_task(oc.serve())
    await settle()
    try:
        yield sock
    finally:
        await sock.close()
        with contextlib.suppress(Closed):
            await task


async def settle() -> None:
    """Let the charger's tasks run (its calls' schemas are checked in a worker thread)."""
    for _ in range(10):
        await asyncio.sleep(0.01)


def meter(wh: int, tx: int) -> dict[str, Any]:
    sample = {"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    return {
        "connectorId": 1,
        "transactionId": tx,
        "meterValue": [{"timestamp": NOW, "sampledValue": [sample]}],
    }


def status(value: str, error: str = "NoError") -> dict[str, Any]:
    return {"connectorId": 1, "errorCode": error, "status": value}


def test_a_driver_charges_from_remote_start_to_ticket() -> None:
    async def scenario() -> None:
        w = World()
        driver = w.driver("D1")
        async with charger(w) as sock:
            cp = w.net.fleet.cps["CP1"]
            assert cp.state is CPState.ACTIVATED and cp.monitor is cp.engine is not None
            assert sock.calls("ChangeAvailability") == [{"connectorId": 0, "type": "Operative"}]
            asking = asyncio.create_task(
                w.send(driver, M.CHARGE_REQUEST, cp_id="CP1", target_kwh=5)
            )
            await settle()
            await asking
            assert sock.calls("RemoteStartTransaction") == [{"idTag": "D1", "connectorId": 1}]
            assert fl(driver).of(M.CHARGE_AUTHORIZED)
            assert (await sock.call("Authorize", {"idTag": "D1"}))[2]["idTagInfo"] == {
                "status": "Accepted"
            }
            start = {"connectorId": 1, "idTag": "D1", "meterStart": 1000, "timestamp": NOW}
            answer = await sock.call("StartTransaction", start)
            session_id = cp.session.id if cp.session else ""
            assert answer[2] == {
                "transactionId": transaction_id(session_id),
                "idTagInfo": {"status": "Accepted"},
            }
            assert cp.state is CPState.SUPPLYING
            tx = answer[2]["transactionId"]
            # The charger lost our answer and asks again: the same transaction, no new one.
            assert (await sock.call("StartTransaction", start))[2] == answer[2]
            w.clock.advance(120)
            assert (await sock.call("MeterValues", meter(1500, tx)))[0] == 3
            assert fl(driver).last(M.TELEMETRY)["kwh"] == 0.5
            stop = {
                "meterStop": 2250,
                "timestamp": NOW,
                "transactionId": tx,
                "reason": "EVDisconnected",
            }
            assert (await sock.call("StopTransaction", stop))[0] == 3
            ticket = fl(driver).last(M.TICKET)
            assert (ticket["kwh"], ticket["reason"], ticket["driver_id"]) == (
                1.25,
                "unplugged",
                "D1",
            )
            assert cp.state is CPState.ACTIVATED and w.writer.settlements == [session_id]
        assert w.state("CP1") is CPState.DISCONNECTED

    run(scenario())


def test_the_target_is_watched_and_a_refused_start_is_denied() -> None:
    async def scenario() -> None:
        w = World()
        driver = w.driver("D1")
        async with charger(w) as sock:
            await w.send(driver, M.CHARGE_REQUEST, cp_id="CP1", target_kwh=0.5)
            start = {"connectorId": 1, "idTag": "D1", "meterStart": 0, "timestamp": NOW}
            tx = (await sock.call("StartTransaction", start))[2]["transactionId"]
            w.clock.advance(60)
            await sock.call("MeterValues", meter(600, tx))
            await settle()
            assert sock.calls("RemoteStopTransaction") == [{"transactionId": tx}]
            stop = {"meterStop": 600, "timestamp": NOW, "transactionId": tx, "reason": "Remote"}
            await sock.call("StopTransaction", stop)
            assert fl(driver).last(M.TICKET)["reason"] == "target_reached"
        async with charger(w, RemoteStartTransaction={"status": "Rejected"}):
            await w.send(driver, M.CHARGE_REQUEST, cp_id="CP1")
            assert fl(driver).last(M.CHARGE_DENIED)["code"] == "engine_refused"
            assert w.net.fleet.cps["CP1"].session is None

    run(scenario())


def test_statuses_map_onto_the_five_states() -> None:
    async def scenario() -> None:
        w = World()
        async with charger(w) as sock:
            await sock.call("StatusNotification", status("Faulted", "GroundFailure"))
            cp = w.net.fleet.cps["CP1"]
            assert cp.state is CPState.BROKEN and cp.fault == "GroundFailure"
            await sock.call("StatusNotification", status("Available"))
            assert cp.state is CPState.ACTIVATED
            await sock.call("StatusNotification", status("Unavailable"))
            assert cp.state is CPState.STOPPED and cp.to_dict()["stopped_by"] == ["charger"]
            await sock.call("StatusNotification", status("Available"))
            assert cp.state is CPState.ACTIVATED and not cp.holds
            await sock.call("StatusNotification", {**status("Faulted"), "connectorId": 2})
            assert cp.state is CPState.ACTIVATED  # another connector: not modelled

    run(scenario())


def test_operator_and_weather_holds_become_change_availability() -> None:
    async def scenario() -> None:
        w = World()
        driver = w.driver("D1")
        async with charger(w) as sock:
            await w.send(driver, M.CHARGE_REQUEST, cp_id="CP1")
            start = {"connectorId": 1, "idTag": "D1", "meterStart": 0, "timestamp": NOW}
            tx = (await sock.call("StartTransaction", start))[2]["transactionId"]
            await w.net.operator.stop("CP1", "operator")
            await settle()
            assert sock.calls("RemoteStopTransaction") == [{"transactionId": tx}]
            assert sock.calls("ChangeAvailability")[-1]["type"] == "Inoperative"
            # Unavailable because Central asked: no hold of the charger's own.
            await sock.call("StatusNotification", status("Unavailable"))
            assert w.net.fleet.cps["CP1"].holds == {"operator"}
            await w.net.weather.alert("Madrid", -3.0, "weather")
            await w.net.operator.resume("CP1", "operator")
            await settle()
            assert w.state("CP1") is CPState.STOPPED  # the weather still holds it
            await w.net.weather.clear("Madrid", "weather")
            await settle()
            assert w.state("CP1") is CPState.ACTIVATED
            assert sock.calls("ChangeAvailability")[-1]["type"] == "Operative"

    run(scenario())


def test_a_charger_acts_only_for_its_own_cp_and_bills_no_driver() -> None:
    async def scenario() -> None:
        w = World()
        victim, driver = w.connect("CP2"), w.driver("D1")
        theirs = await w.supplying(driver, victim, kwh=0.2)
        async with charger(w, "CP1") as sock:
            # Another CP's transaction (its number is derivable): refused, audited, stopped.
            answer = await sock.call("MeterValues", meter(9000, transaction_id(theirs)))
            assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation"
            assert answer[4]["code"] == "no_session"
            await settle()
            assert sock.calls("RemoteStopTransaction") == [
                {"transactionId": transaction_id(theirs)}
            ]
            stop = {"meterStop": 9000, "timestamp": NOW, "transactionId": transaction_id(theirs)}
            assert (await sock.call("StopTransaction", stop))[0] == 3
            assert w.net.fleet.cps["CP2"].session is not None and w.writer.settlements == []
            assert "no_session" in [e.data.get("code") for e in w.writer.events]
            # D1's tag at this reader while D1 charges elsewhere: a charge billed to nobody.
            start = {"connectorId": 1, "idTag": "D1", "meterStart": 0, "timestamp": NOW}
            answer = await sock.call("StartTransaction", start)
            assert answer[2]["idTagInfo"] == {"status": "Accepted"}
            local = w.net.fleet.cps["CP1"].session
            assert local is not None and local.driver_id is None
            assert not sock.calls("RemoteStartTransaction")
            # Energy Central cannot accept: refused with the 1.6 code, the session untouched.
            answer = await sock.call("MeterValues", meter(10**9, answer[2]["transactionId"]))
            assert answer[2] == "PropertyConstraintViolation" and answer[4]["code"] == "bad_energy"
            assert local.kwh == 0
            answer = await sock.call(
                "MeterValues",
                {
                    **meter(5, 1),
                    "meterValue": [{"timestamp": NOW, "sampledValue": [{"value": "x"}]}],
                },
            )
            assert answer[2] == "PropertyConstraintViolation"

    run(scenario())


def test_a_session_left_open_by_a_restart_is_settled_when_the_charger_connects() -> None:
    async def scenario() -> None:
        orphan = OpenSession(
            "s-orphan", "CP1", "D1", "supplying", Decimal("2.5"), Decimal("0.40"), None, START
        )
        w = World(orphans=[orphan])
        w.writer.rows[orphan.id] = {
            "cp_id": "CP1",
            "driver_id": "D1",
            "price": orphan.price,
            "status": "supplying",
            "kwh": orphan.energy_kwh,
            "started_at": START,
        }
        async with charger(w):
            assert w.writer.settlements == ["s-orphan"]
            assert w.writer.rows["s-orphan"]["reason"] == "lost"

    run(scenario())


def test_revocation_and_replacement_close_the_socket() -> None:
    async def scenario() -> None:
        w = World()
        async with charger(w) as sock:
            w.net.chargepoints.revoke(w.net.fleet.cps["CP1"])
            await settle()
            assert sock.closed == "revoked by operator"
        assert w.state("CP1") is CPState.STOPPED  # until it logs in again
        async with charger(w) as first:
            assert w.state("CP1") is CPState.ACTIVATED
            async with charger(w):
                await settle()
                assert first.closed == "replaced by a new monitor connection"
                assert w.state("CP1") is CPState.ACTIVATED

    run(scenario())


def test_availability_refused_while_booting_is_asked_again_at_boot() -> None:
    async def scenario() -> None:
        w = World()
        await w.net.operator.stop("CP1", "operator")
        async with charger(w, refuse_once=("ChangeAvailability",)) as sock:
            assert sock.calls("ChangeAvailability") == [{"connectorId": 0, "type": "Inoperative"}]
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            assert (await sock.call("BootNotification", boot))[2]["status"] == "Accepted"
            await settle()
            assert len(sock.calls("ChangeAvailability")) == 2  # asked again, answered now

    run(scenario())
