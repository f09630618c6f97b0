"""Sessions: authorise, supply, meter, settle exactly once; denials; orphans after a restart."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from central.energy import energy_bound
from central.errors import Conflict, NotFound
from central.reads import OpenSession
from central.states import CPState
from common.events import EventType
from common.protocol.messages import ErrorCode
from tests.unit.central.fakes import START, M, World, fl, run


def test_a_charge_from_request_to_ticket() -> None:
    async def scenario() -> None:
        w = World()
        cp, driver = w.connect("CP1"), w.driver("D1")
        sid = await w.authorize(driver, cp, target_kwh=7)
        asked = cp.elink.last(M.AUTHORIZE_SUPPLY)
        assert asked == {
            "session_id": sid,
            "driver_id": "D1",
            "price_eur_kwh": 0.4,
            "target_kwh": 7.0,
        }
        assert fl(driver).last(M.CHARGE_AUTHORIZED)["session_id"] == sid
        await w.send(cp.engine, M.SUPPLY_STARTED, session_id=sid)
        assert w.state("CP1") is CPState.SUPPLYING
        assert fl(driver).last(M.SUPPLY_STARTED) == {"session_id": sid, "cp_id": "CP1"}
        assert cp.mlink.last(M.STATUS)["state"] == "SUPPLYING"
        w.clock.advance(120)
        await w.send(cp.engine, M.TELEMETRY, session_id=sid, kwh=1.25, kw=11)
        progress = fl(driver).last(M.TELEMETRY)
        assert (progress["kwh"], progress["eur"], progress["kw"]) == (1.25, 0.5, 11.0)
        await w.send(cp.engine, M.SUPPLY_ENDED, session_id=sid, kwh=1.5, reason="unplugged")
        ticket = cp.elink.last(M.TICKET)
        assert ticket == fl(driver).last(M.TICKET)
        assert (ticket["kwh"], ticket["total_eur"], ticket["reason"]) == (1.5, 0.6, "unplugged")
        assert w.state("CP1") is CPState.ACTIVATED and w.net.fleet.cps["CP1"].session is None
        # The engine repeats its report (the ticket was lost): the same ticket, no new bill.
        await w.send(cp.engine, M.SUPPLY_ENDED, session_id=sid, kwh=1.5)
        assert cp.elink.of(M.TICKET) == [ticket, ticket]
        assert w.writer.settlements == [sid]

    run(scenario())


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        ("unknown", ErrorCode.UNKNOWN_CP),
        ("disconnected", ErrorCode.CP_UNAVAILABLE),
        ("broken", ErrorCode.CP_UNAVAILABLE),
        ("stopped", ErrorCode.CP_UNAVAILABLE),
        ("no engine", ErrorCode.CP_UNAVAILABLE),
        ("busy", ErrorCode.CP_BUSY),
        ("driver busy", ErrorCode.DRIVER_BUSY),
    ],
)
def test_denials_carry_a_code_and_are_recorded(setup: str, code: ErrorCode) -> None:
    async def scenario() -> None:
        w = World(cps=3)
        target = "CP9" if setup == "unknown" else "CP1"
        if setup != "disconnected":
            cp = w.connect("CP1", engine_ok=setup != "broken")
        if setup == "stopped":
            await w.net.operator.stop("CP1", "test")
        if setup == "no engine":
            w.net.chargepoints.engine_lost("CP1", cp.engine.link)
        if setup == "busy":
            await w.supplying(w.driver("D2"), cp)
        if setup == "driver busy":
            await w.supplying(w.driver("D1"), w.connect("CP2"))
        driver = w.driver("D1")
        await w.send(driver, M.CHARGE_REQUEST, cp_id=target)
        assert fl(driver).last(M.CHARGE_DENIED)["code"] == code
        denied = w.writer.of(EventType.SESSION_DENIED)[-1]
        assert denied.data["code"] == code and denied.driver_id == "D1"

    run(scenario())


def test_an_engine_that_refuses_or_stays_silent() -> None:
    async def scenario() -> None:
        w = World(authorize_timeout=0.05)
        cp, driver = w.connect("CP1"), w.driver()
        task = asyncio.create_task(w.send(driver, M.CHARGE_REQUEST, cp_id="CP1"))
        sid = await w.authorization_at(cp)
        await w.send(cp.engine, M.CHARGE_DENIED, session_id=sid, reason="cable fault")
        await task
        denied = fl(driver).last(M.CHARGE_DENIED)
        assert (denied["code"], denied["reason"]) == (ErrorCode.ENGINE_REFUSED, "cable fault")
        assert w.writer.rows[sid]["status"] == "cancelled"
        await w.send(driver, M.CHARGE_REQUEST, cp_id="CP1")  # nobody answers this time
        assert fl(driver).last(M.CHARGE_DENIED)["reason"] == "charge point did not answer"
        assert cp.elink.last(M.STOP)["reason"] == "withdrawn"
        assert w.net.fleet.cps["CP1"].session is None

    run(scenario())


def test_losing_the_monitor_withdraws_an_authorisation() -> None:
    async def scenario() -> None:
        w = World()
        cp, driver = w.connect("CP1"), w.driver()
        sid = await w.authorize(driver, cp)
        w.clock.advance(30)
        w.net.chargepoints.check_heartbeats()  # monitor silent 30 s: DISCONNECTED too
        assert w.writer.rows[sid]["status"] == "cancelled"
        assert fl(driver).last(M.CHARGE_DENIED)["reason"] == "monitor_lost"

    run(scenario())


def test_plug_timeout_withdraws_the_authorisation() -> None:
    async def scenario() -> None:
        w = World()
        cp, driver = w.connect("CP1"), w.driver()
        sid = await w.authorize(driver, cp)
        for _ in range(13):  # heart-beats keep the CP connected for 65 s
            w.clock.advance(5)
            await w.send(cp.monitor, M.HEARTBEAT, engine_ok=True)
            w.net.chargepoints.check_heartbeats()
        assert w.writer.rows[sid]["status"] == "cancelled"
        assert fl(driver).last(M.CHARGE_DENIED)["reason"] == "vehicle not plugged in time"
        assert cp.elink.last(M.STOP)["session_id"] == sid
        assert w.state("CP1") is CPState.ACTIVATED

    run(scenario())


def test_the_energy_bound() -> None:
    assert energy_bound(Decimal(36), 0) == Decimal("0.6")  # a minute of grace at 36 kW
    assert energy_bound(Decimal(36), 3600) == Decimal("40.2")  # an hour, plus a tenth, plus grace
    assert energy_bound(Decimal(36), -5) == Decimal("0.6")


def test_energy_may_grow_only_as_fast_as_the_power_allows() -> None:
    async def scenario() -> None:
        w = World()  # 50 kW network: 0.833 kWh of grace
        cp = w.connect("CP1")
        sid = await w.supplying(w.driver(), cp)
        await w.send(cp.engine, M.TELEMETRY, session_id=sid, kwh=0.9, kw=50)  # above bound
        await w.send(cp.engine, M.TELEMETRY, session_id=sid, kwh=0.5, kw=50, extra="ignored")
        await w.send(cp.engine, M.TELEMETRY, session_id=sid, kwh=0.4, kw=50)  # shrinks
        await w.send(cp.engine, M.TELEMETRY, session_id=sid, kwh=0.6, kw=51)  # above 50 kW
        assert cp.elink.errors() == [ErrorCode.BAD_ENERGY] * 3
        assert w.net.fleet.cps["CP1"].session.kwh == Decimal("0.5")  # type: ignore[union-attr]
        w.clock.advance(3600)
        await w.send(cp.engine, M.TELEMETRY, session_id=sid, kwh=50.0, kw=50)
        assert w.net.fleet.cps["CP1"].session.kwh == Decimal(50)  # type: ignore[union-attr]

    run(scenario())


def test_a_fault_ends_the_supply_once_and_every_party_is_told() -> None:
    async def scenario() -> None:
        w = World()
        cp, driver = w.connect("CP1"), w.driver()
        sid = await w.supplying(driver, cp, kwh=1.0)
        await w.send(cp.monitor, M.ENGINE_STATUS, ok=False, reason="overheating")
        await asyncio.sleep(0)  # the ticket follows the commit
        assert w.state("CP1") is CPState.BROKEN
        assert cp.elink.last(M.STOP) == {"session_id": sid, "reason": "fault"}
        assert fl(driver).last(M.TICKET)["reason"] == "fault"
        await w.send(cp.engine, M.SUPPLY_ENDED, session_id=sid, kwh=1.1, reason="fault")
        assert cp.elink.last(M.TICKET)["kwh"] == 1.0  # as settled: the fault's reading
        assert w.writer.settlements == [sid]
        assert w.net.fleet.cps["CP1"].fault == "overheating"

    run(scenario())


def _orphan(status: str = "supplying", kwh: str = "1.0") -> OpenSession:
    return OpenSession(
        "S-OLD",
        "CP1",
        "D1",
        status,
        Decimal(kwh),
        Decimal("0.40"),
        None,
        START - timedelta(minutes=10),
    )


def _world_after_restart(orphan: OpenSession) -> World:
    w = World(orphans=[orphan])
    w.writer.rows[orphan.id] = {
        "cp_id": orphan.cp_id,
        "driver_id": orphan.driver_id,
        "price": orphan.price,
        "status": orphan.status,
        "kwh": orphan.energy_kwh,
        "started_at": orphan.started_at,
    }
    return w


def test_after_a_restart_the_engine_resumes_its_supply() -> None:
    async def scenario() -> None:
        w = _world_after_restart(_orphan())
        cp, driver = w.connect("CP1"), w.driver("D1")
        await w.send(cp.engine, M.STATUS, session_id="S-OLD", supplying=True, kwh=2.0)
        assert w.state("CP1") is CPState.SUPPLYING
        await w.send(cp.engine, M.TELEMETRY, session_id="S-OLD", kwh=2.5, kw=11)
        assert fl(driver).last(M.TELEMETRY)["kwh"] == 2.5
        await w.send(cp.engine, M.SUPPLY_ENDED, session_id="S-OLD", kwh=3.0)
        assert fl(driver).last(M.TICKET)["kwh"] == 3.0 and w.writer.settlements == ["S-OLD"]

    run(scenario())


def test_after_a_restart_an_orphan_is_settled_by_its_engine_within_bounds() -> None:
    async def scenario() -> None:
        w = _world_after_restart(_orphan())
        cp = w.connect("CP1")
        # 10 minutes at 50 kW: at most 50 * (660 + 60) / 3600 = 10 kWh.
        await w.send(cp.engine, M.SUPPLY_ENDED, session_id="S-OLD", kwh=11.0)
        await w.send(cp.engine, M.SUPPLY_ENDED, session_id="S-OLD", kwh=0.5)
        assert cp.elink.errors() == [ErrorCode.BAD_ENERGY] * 2 and w.writer.settlements == []
        await w.send(cp.engine, M.SUPPLY_ENDED, session_id="S-OLD", kwh=4.0)
        assert cp.elink.last(M.TICKET)["kwh"] == 4.0

    run(scenario())


def test_an_orphan_its_engine_forgot_is_settled_as_lost() -> None:
    async def scenario() -> None:
        w = _world_after_restart(_orphan())
        cp = w.connect("CP1")
        await w.send(cp.engine, M.STATUS, session_id=None, supplying=False, kwh=0)
        assert w.writer.settlements == ["S-OLD"] and w.writer.rows["S-OLD"]["reason"] == "lost"

    run(scenario())


def test_an_orphan_of_one_cp_is_unknown_to_another() -> None:
    async def scenario() -> None:
        w = _world_after_restart(_orphan())
        w.connect("CP1")
        other = w.connect("CP2")
        await w.send(other.engine, M.SUPPLY_ENDED, session_id="S-OLD", kwh=1.0)
        await w.send(other.engine, M.STATUS, session_id="S-OLD", supplying=True, kwh=1.0)
        assert other.elink.errors() == [ErrorCode.UNKNOWN_SESSION]
        assert w.writer.settlements == [] and w.state("CP2") is CPState.ACTIVATED

    run(scenario())


def test_the_operator_ends_sessions() -> None:
    async def scenario() -> None:
        w = World()
        cp, driver = w.connect("CP1"), w.driver()
        sid = await w.supplying(driver, cp, kwh=1.0)
        ticket = await w.net.operator.stop_session(sid, "operator")
        assert ticket.end_reason == "stopped_by_operator" and ticket.energy_kwh == Decimal("1.0")
        assert cp.elink.last(M.STOP)["reason"] == "operator"
        sid2 = await w.authorize(driver, cp)
        with pytest.raises(Conflict) as refused:
            await w.net.operator.stop_session(sid2, "operator")
        assert refused.value.code is ErrorCode.NOT_SUPPLYING
        with pytest.raises(NotFound) as unknown:
            await w.net.operator.stop_session("S-NONE", "operator")
        assert unknown.value.code is ErrorCode.UNKNOWN_SESSION and unknown.value.status == 404

    run(scenario())
