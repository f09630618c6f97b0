"""Every message acts only for its own connection: refusals with a code, nothing changed."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from central.states import CPState
from common.events import EventType
from common.protocol.messages import ErrorCode
from tests.unit.central.fakes import M, World, fl, run


def test_an_engine_cannot_settle_another_cps_session() -> None:
    async def scenario() -> None:
        w = World()
        victim, attacker = w.connect("CP1"), w.connect("CP2")
        driver = w.driver("D1")
        sid = await w.supplying(driver, victim, kwh=1.2)
        await w.send(attacker.engine, M.SUPPLY_ENDED, session_id=sid, kwh=123456.7)
        assert attacker.elink.errors() == [ErrorCode.UNKNOWN_SESSION]
        assert attacker.elink.of(M.TICKET) == [] and fl(driver).of(M.TICKET) == []
        assert w.writer.settlements == [] and w.state("CP1") is CPState.SUPPLYING
        s = w.net.fleet.cps["CP1"].session
        assert s is not None and s.id == sid and s.kwh == Decimal("1.2")
        error = w.writer.of(EventType.ERROR)[-1]
        assert error.cp_id == "CP2" and error.data["code"] == "unknown_session"
        assert error.source_ip == "192.0.2.7"

    run(scenario())


def test_an_engine_cannot_settle_a_finished_session_of_another_cp() -> None:
    async def scenario() -> None:
        w = World()
        victim, attacker = w.connect("CP1"), w.connect("CP2")
        sid = await w.supplying(w.driver(), victim, kwh=1.0)
        await w.send(victim.engine, M.SUPPLY_ENDED, session_id=sid, kwh=1.0)
        await w.send(attacker.engine, M.SUPPLY_ENDED, session_id=sid, kwh=5.0)
        assert attacker.elink.errors() == [ErrorCode.UNKNOWN_SESSION]
        assert attacker.elink.of(M.TICKET) == []
        assert w.writer.rows[sid]["kwh"] == Decimal("1.0")

    run(scenario())


@pytest.mark.parametrize(
    ("kwh", "why"),
    [(123456.7, "more than the CP could deliver"), (0.5, "less than last reported")],
)
def test_own_session_with_impossible_energy_is_refused(kwh: float, why: str) -> None:
    async def scenario() -> None:
        w = World()
        cp = w.connect("CP1")
        driver = w.driver()
        sid = await w.supplying(driver, cp, kwh=1.0)
        await w.send(cp.engine, M.SUPPLY_ENDED, session_id=sid, kwh=kwh)
        assert cp.elink.errors() == [ErrorCode.BAD_ENERGY], why
        assert cp.elink.last(M.ERROR)["session_id"] == sid
        assert w.writer.settlements == [] and w.state("CP1") is CPState.SUPPLYING
        await w.send(cp.engine, M.SUPPLY_ENDED, session_id=sid, kwh=1.5)
        assert fl(driver).last(M.TICKET)["kwh"] == 1.5

    run(scenario())


def test_answers_are_matched_on_cp_and_session() -> None:
    async def scenario() -> None:
        w = World()
        victim, attacker = w.connect("CP1"), w.connect("CP2")
        driver = w.driver()
        task = asyncio.create_task(w.send(driver, M.CHARGE_REQUEST, cp_id="CP1"))
        sid = await w.authorization_at(victim)
        await w.send(attacker.engine, M.CHARGE_DENIED, session_id=sid, reason="no")
        await w.send(attacker.engine, M.CHARGE_AUTHORIZED, session_id=sid)
        assert attacker.elink.errors() == [ErrorCode.UNKNOWN_SESSION] * 2
        await w.send(victim.engine, M.CHARGE_AUTHORIZED, session_id=sid)
        await task
        assert fl(driver).last(M.CHARGE_AUTHORIZED)["session_id"] == sid
        assert fl(driver).of(M.CHARGE_DENIED) == []

    run(scenario())


def test_an_engine_cannot_bill_a_driver() -> None:
    async def scenario() -> None:
        w = World()
        cp = w.connect("CP1")
        w.driver("D1")
        await w.send(cp.engine, M.CHARGE_REQUEST, driver_id="D1")
        await w.send(cp.engine, M.CHARGE_REQUEST, cp_id="CP2")
        assert cp.elink.errors() == [ErrorCode.FORBIDDEN] * 2
        assert (
            w.net.fleet.cps["CP1"].session is None and "persist_authorized" not in w.writer.names()
        )
        sid = await w.authorize(cp.engine, cp)  # the CP's own menu: nobody's account
        assert w.writer.rows[sid]["driver_id"] is None

    run(scenario())


def test_a_driver_charges_only_on_its_own_account() -> None:
    async def scenario() -> None:
        w = World()
        w.connect("CP1")
        d1 = w.driver("D1")
        await w.send(d1, M.CHARGE_REQUEST, cp_id="CP1", driver_id="D2")
        assert fl(d1).errors() == [ErrorCode.FORBIDDEN]
        assert w.net.fleet.cps["CP1"].session is None

    run(scenario())


@pytest.mark.parametrize("kwh", ["NaN", "1e999999", 1e308, True, None, [1]])
def test_numbers_are_checked_at_the_edge(kwh: Any) -> None:
    async def scenario() -> None:
        w = World()
        cp = w.connect("CP1")
        driver = w.driver()
        sid = await w.supplying(driver, cp, kwh=1.0)
        await w.send(cp.engine, M.TELEMETRY, session_id=sid, kwh=kwh, kw=11)
        await w.send(cp.engine, M.SUPPLY_ENDED, session_id=sid, kwh=kwh)
        assert cp.elink.errors() == [ErrorCode.BAD_MESSAGE] * 2
        assert w.state("CP1") is CPState.SUPPLYING and w.writer.settlements == []
        await w.send(cp.engine, M.TELEMETRY, session_id=sid, kwh=1.1, kw=11)
        assert fl(driver).last(M.TELEMETRY)["kwh"] == 1.1

    run(scenario())


@pytest.mark.parametrize(
    ("role", "msg_type", "body"),
    [
        ("monitor", M.TELEMETRY, {"session_id": "S", "kwh": 1}),
        ("monitor", M.CHARGE_REQUEST, {"cp_id": "CP1"}),
        ("engine", M.HEARTBEAT, {"engine_ok": False}),
        ("driver", M.SUPPLY_ENDED, {"session_id": "S", "kwh": 1}),
        ("driver", M.HEARTBEAT, {}),
    ],
)
def test_messages_of_another_role_are_not_allowed(
    role: str, msg_type: M, body: dict[str, Any]
) -> None:
    async def scenario() -> None:
        w = World()
        cp = w.connect("CP1")
        peer = {"monitor": cp.monitor, "engine": cp.engine, "driver": w.driver()}[role]
        await w.send(peer, msg_type, **body)
        assert fl(peer).errors() == [ErrorCode.NOT_ALLOWED]
        assert w.state("CP1") is CPState.ACTIVATED

    run(scenario())


def test_a_replaced_engine_connection_acts_no_more() -> None:
    async def scenario() -> None:
        w = World()
        old = w.connect("CP1")
        new = w.connect("CP1")
        sid = await w.supplying(w.driver(), new, kwh=1.0)
        assert old.elink.closed
        await w.send(old.engine, M.SUPPLY_ENDED, session_id=sid, kwh=1.0)
        assert old.elink.errors() == [ErrorCode.NOT_ALLOWED] and w.writer.settlements == []

    run(scenario())


def test_a_replaced_monitor_changes_nothing() -> None:
    async def scenario() -> None:
        w = World()
        old = w.connect("CP1")
        w.connect("CP1")
        await w.send(old.monitor, M.HEARTBEAT, engine_ok=False, reason="forged")
        assert w.state("CP1") is CPState.ACTIVATED

    run(scenario())
