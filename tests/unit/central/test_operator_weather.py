"""Operator stop/resume, revocation, prices; weather alerts hold CPs and clearing frees them."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest

from central.errors import InvalidInput, NotFound
from central.states import CPState
from common.events import EventType
from common.protocol.messages import ErrorCode
from tests.unit.central.fakes import M, World, fl, run


def test_stop_and_resume_one_and_all() -> None:
    async def scenario() -> None:
        w = World(cps=3)
        for cp_id in ("CP1", "CP2", "CP3"):
            w.connect(cp_id)
        assert await w.net.operator.stop("CP1", "operator", "198.51.100.1") == 1
        assert w.state("CP1") is CPState.STOPPED and w.state("CP2") is CPState.ACTIVATED
        command = w.writer.of(EventType.OPERATOR_COMMAND)[-1]
        assert (command.cp_id, command.actor, command.source_ip) == (
            "CP1",
            "operator",
            "198.51.100.1",
        )
        assert ("persist_operator_stop", {"cp_ids": ["CP1"], "stopped": True}) in w.writer.work
        assert await w.net.operator.stop(None, "operator") == 3
        assert w.net.fleet.counts()["STOPPED"] == 3
        assert await w.net.operator.resume(None, "operator") == 3
        assert w.net.fleet.counts()["ACTIVATED"] == 3
        with pytest.raises(NotFound) as unknown:
            await w.net.operator.stop("CP9", "operator")
        assert unknown.value.code is ErrorCode.UNKNOWN_CP

    run(scenario())


def test_a_stop_ends_a_running_supply_at_once() -> None:
    async def scenario() -> None:
        w = World()
        cp, driver = w.connect("CP1"), w.driver()
        sid = await w.supplying(driver, cp, kwh=1.0)
        await w.net.operator.stop("CP1", "operator")
        await asyncio.sleep(0)
        assert w.state("CP1") is CPState.STOPPED and w.writer.settlements == [sid]
        assert cp.elink.last(M.STOP)["reason"] == "stopped_by_operator"
        assert fl(driver).last(M.TICKET)["reason"] == "stopped_by_operator"
        await w.send(driver, M.CHARGE_REQUEST, cp_id="CP1")
        assert fl(driver).last(M.CHARGE_DENIED)["reason"] == "charge point is out of order"

    run(scenario())


def test_revocation_stops_the_cp_until_its_monitor_authenticates_again() -> None:
    async def scenario() -> None:
        w = World()
        cp = w.connect("CP1")
        await w.net.operator.revoke_key("CP1", "operator")
        assert w.state("CP1") is CPState.STOPPED
        assert cp.mlink.last(M.KEY_REVOKED) == {"reason": "revoked by operator"}
        assert cp.mlink.closed and cp.elink.closed
        assert w.net.fleet.cps["CP1"].to_dict()["key_status"] == "revoked"
        w.net.chargepoints.monitor_lost("CP1", cp.monitor.link, "closed")
        assert w.state("CP1") is CPState.STOPPED  # Central cut it: not DISCONNECTED
        w.connect("CP1")
        assert w.state("CP1") is CPState.ACTIVATED
        assert w.writer.of(EventType.CP_KEY_REVOKED)[-1].cp_id == "CP1"

    run(scenario())


@pytest.mark.parametrize("price", ["abc", -1, 100.01, "NaN", "Infinity", True, None])
def test_bad_prices_are_refused(price: Any) -> None:
    async def scenario() -> None:
        w = World()
        with pytest.raises(InvalidInput) as refused:
            await w.net.operator.set_price("CP1", price, "operator")
        assert refused.value.code is ErrorCode.INVALID_VALUE and refused.value.status == 400
        assert w.net.fleet.cps["CP1"].price == Decimal("0.40")

    run(scenario())


def test_a_new_price_is_rounded_recorded_and_billed() -> None:
    async def scenario() -> None:
        w = World()
        assert await w.net.operator.set_price("CP1", "0.123456", "operator") == Decimal("0.1235")
        changed = w.writer.of(EventType.CP_PRICE_CHANGED)[-1]
        assert changed.data == {"from": 0.4, "to": 0.1235}
        cp = w.connect("CP1")
        await w.authorize(w.driver(), cp)
        assert cp.elink.last(M.AUTHORIZE_SUPPLY)["price_eur_kwh"] == 0.1235

    run(scenario())


def test_a_weather_alert_lets_a_supply_finish_then_stops() -> None:
    async def scenario() -> None:
        w = World(cps=3)  # CP1, CP2 in Madrid; CP3 in Oslo
        busy, idle, far = w.connect("CP1"), w.connect("CP2"), w.connect("CP3")
        driver = w.driver()
        sid = await w.supplying(driver, busy, kwh=1.0)
        assert await w.net.weather.alert("Madrid", -12.5, "weather") == 2
        assert w.state("CP1") is CPState.SUPPLYING and w.state("CP2") is CPState.STOPPED
        assert w.state("CP3") is CPState.ACTIVATED
        await w.send(busy.engine, M.SUPPLY_ENDED, session_id=sid, kwh=1.2)
        assert w.state("CP1") is CPState.STOPPED
        assert fl(driver).last(M.TICKET)["kwh"] == 1.2
        alert = w.writer.of(EventType.WEATHER_ALERT)[-1]
        assert alert.data["cp_ids"] == ["CP1", "CP2"] and alert.data["temperature_c"] == -12.5
        assert await w.net.weather.clear("Madrid", "weather") == 2
        assert w.state("CP1") is CPState.ACTIVATED and w.state("CP2") is CPState.ACTIVATED
        del idle, far

    run(scenario())


def test_a_second_reason_keeps_the_cp_stopped() -> None:
    async def scenario() -> None:
        w = World()
        w.connect("CP1")
        await w.net.weather.alert("Madrid", None, "weather")
        await w.net.operator.stop("CP1", "operator")
        await w.net.weather.clear("Madrid", "weather")
        assert w.state("CP1") is CPState.STOPPED
        assert w.net.fleet.cps["CP1"].to_dict()["stopped_by"] == ["operator"]
        await w.net.operator.resume("CP1", "operator")
        assert w.state("CP1") is CPState.ACTIVATED

    run(scenario())


def test_alerts_survive_a_restart_and_unknown_ones_cannot_be_cleared() -> None:
    async def scenario() -> None:
        w = World(alerts=["Madrid"])
        w.connect("CP1")
        assert w.state("CP1") is CPState.STOPPED
        with pytest.raises(NotFound) as unknown:
            await w.net.weather.clear("Atlantis", "weather")
        assert unknown.value.code is ErrorCode.NO_ALERT

    run(scenario())


def test_readings_are_kept_per_location() -> None:
    w = World()
    w.net.weather.reading("Madrid", 3.5, "ok", "weather")
    w.net.weather.reading("Oslo", None, "unknown", "weather", "provider down")
    assert w.net.fleet.readings["Oslo"] == {
        "temperature_c": None,
        "status": "unknown",
        "reason": "provider down",
        "alert": False,
    }
    assert len(w.writer.of(EventType.WEATHER_READING)) == 2


def test_an_alerts_temperature_is_the_latest_reading_and_readings_follow_the_alert() -> None:
    """A snapshot of the readings shows what the events showed: the alert's temperature,
    and whether the location is under an alert now (not when the reading came)."""

    async def scenario() -> None:
        w = World()
        w.net.weather.reading("Madrid", 3.5, "ok", "weather")
        await w.net.weather.alert("Madrid", -2.0, "operator")
        assert w.net.fleet.readings["Madrid"] == {
            "temperature_c": -2.0,
            "status": "ok",
            "reason": None,
            "alert": True,
        }
        assert len(w.writer.of(EventType.WEATHER_READING)) == 1  # the alert is its own event
        await w.net.weather.clear("Madrid", "operator")
        assert w.net.fleet.readings["Madrid"]["alert"] is False
        assert w.net.fleet.readings["Madrid"]["temperature_c"] == -2.0
        await w.net.weather.alert("Madrid", None, "operator")  # no temperature: kept
        assert w.net.fleet.readings["Madrid"]["temperature_c"] == -2.0
        assert w.net.fleet.readings["Madrid"]["alert"] is True

    run(scenario())
