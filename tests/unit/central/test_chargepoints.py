"""Charge points' links and health drive the state table; registrations come and go."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from central.reads import CPRow
from central.settings import heartbeat_timing
from central.states import CPState
from common.errors import ConfigError
from common.events import EventType
from tests.unit.central.fakes import M, World, fl, run


def test_monitor_and_engine_health_make_the_state() -> None:
    async def scenario() -> None:
        w = World()
        assert w.state("CP1") is CPState.DISCONNECTED  # loaded, no monitor yet
        cp = w.connect("CP1")
        assert w.state("CP1") is CPState.ACTIVATED
        assert cp.mlink.last(M.STATUS) == {
            "state": "ACTIVATED",
            "reason": "authenticated",
            "heartbeat_interval": 1.0,  # Central's setting: every monitor beats at it
        }
        await w.send(cp.monitor, M.HEARTBEAT, engine_ok=False, reason="no reply")
        assert w.state("CP1") is CPState.BROKEN and w.net.fleet.cps["CP1"].fault == "no reply"
        await w.send(cp.monitor, M.ENGINE_STATUS, ok=True)
        assert w.state("CP1") is CPState.ACTIVATED
        w.net.chargepoints.monitor_lost("CP1", cp.monitor.link, "monitor disconnected")
        assert w.state("CP1") is CPState.DISCONNECTED
        changes = [(e.data["old"], e.data["new"]) for e in w.writer.of(EventType.CP_STATE_CHANGED)]
        assert [(str(a), str(b)) for a, b in changes] == [
            ("DISCONNECTED", "ACTIVATED"),
            ("ACTIVATED", "BROKEN"),
            ("BROKEN", "ACTIVATED"),
            ("ACTIVATED", "DISCONNECTED"),
        ]

    run(scenario())


def test_a_monitor_with_a_faulty_engine_comes_up_broken() -> None:
    w = World()
    w.connect("CP1", engine_ok=False)
    assert w.state("CP1") is CPState.BROKEN


def test_silence_disconnects_and_closes_the_monitor() -> None:
    async def scenario() -> None:
        w = World()
        cp, quiet = w.connect("CP1"), w.connect("CP2")
        for _ in range(3):
            w.clock.advance(2)
            await w.send(cp.monitor, M.HEARTBEAT, engine_ok=True)
        assert w.net.chargepoints.check_heartbeats() == ["CP2"]
        assert quiet.mlink.closed == "heartbeat timeout"
        assert w.state("CP1") is CPState.ACTIVATED and w.state("CP2") is CPState.DISCONNECTED

    run(scenario())


def test_losing_the_monitor_mid_supply_settles_the_session() -> None:
    async def scenario() -> None:
        w = World()
        cp, driver = w.connect("CP1"), w.driver()
        sid = await w.supplying(driver, cp, kwh=1.0)
        w.net.chargepoints.monitor_lost("CP1", cp.monitor.link, "monitor disconnected")
        await asyncio.sleep(0)
        assert w.state("CP1") is CPState.DISCONNECTED and w.writer.settlements == [sid]
        assert fl(driver).last(M.TICKET)["reason"] == "monitor_lost"

    run(scenario())


def test_a_stop_pending_while_disconnected_applies_when_the_monitor_returns() -> None:
    async def scenario() -> None:
        w = World()
        await w.net.operator.stop("CP1", "operator")
        assert w.state("CP1") is CPState.DISCONNECTED
        w.connect("CP1")
        assert w.state("CP1") is CPState.STOPPED

    run(scenario())


def test_engine_key_is_the_monitors_until_revoked() -> None:
    async def scenario() -> None:
        w = World()
        assert w.net.chargepoints.engine_key("CP1") is None
        w.connect("CP1")
        assert w.net.chargepoints.engine_key("CP1") == b"k" * 32
        assert w.net.chargepoints.engine_key("CP9") is None
        await w.net.operator.revoke_key("CP1", "operator")
        assert w.net.chargepoints.engine_key("CP1") is None

    run(scenario())


def test_deregistration_cuts_the_cp_off() -> None:
    async def scenario() -> None:
        w = World()
        cp, driver = w.connect("CP1"), w.driver()
        sid = await w.supplying(driver, cp, kwh=1.0)
        gone = CPRow("CP1", "Madrid", Decimal("0.40"), False, False, datetime.now(UTC))
        w.net.chargepoints.sync_registrations([gone])
        await asyncio.sleep(0)
        assert cp.mlink.last(M.KEY_REVOKED) == {"reason": "deregistered"}
        assert cp.mlink.closed == "deregistered" and cp.elink.closed == "deregistered"
        assert w.writer.settlements == [sid] and fl(driver).last(M.TICKET)["kwh"] == 1.0
        assert w.net.fleet.counts()["DISCONNECTED"] == 1  # CP2; CP1 is no longer counted

    run(scenario())


def test_a_registration_and_a_new_price_are_picked_up() -> None:
    w = World(cps=1)
    now = datetime.now(UTC)
    w.net.chargepoints.sync_registrations(
        [
            CPRow("CP1", "Madrid", Decimal("0.55"), True, False, now),
            CPRow("CP7", "Oslo", Decimal("0.30"), True, False, now),
        ]
    )
    snapshot = {c["id"]: c for c in w.net.fleet.snapshot()}
    assert snapshot["CP1"]["price_eur_kwh"] == 0.55
    assert snapshot["CP7"]["state"] == "DISCONNECTED"


@pytest.mark.parametrize(
    ("interval", "timeout", "expected"),
    [
        (None, None, (5.0, 15.0)),
        (2.0, None, (2.0, 6.0)),
        (None, 3.0, (1.0, 3.0)),
        (1.0, 9.0, (1.0, 9.0)),
    ],
)
def test_heartbeat_interval_and_timeout_default_from_each_other(
    interval: float | None, timeout: float | None, expected: tuple[float, float]
) -> None:
    assert heartbeat_timing(interval, timeout) == expected


def test_a_timeout_within_one_heartbeat_is_refused() -> None:
    with pytest.raises(ConfigError, match="not longer than the heart-beat interval"):
        heartbeat_timing(5.0, 5.0)
