"""Several Centrals, the domain's part: a process acts only for the CPs it serves.

A CP marked ``remote`` is served by another process: commands about it are passed on
(``fleet.peers``), never carried out here; what another process passes on is carried out
here only for CPs served here (:class:`central.remote.RemoteOps`).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import pytest

from central.errors import CentralError, Conflict
from central.forward import error_from, error_reply
from central.model import ActiveSession
from central.remote import RemoteOps
from central.states import CPState
from common.protocol.messages import ErrorCode
from tests.unit.central.fakes import FakeLink, M, World, fl, run


class FakePeers:
    """The other processes: records what is told, answers questions as scripted."""

    node_id = "10.0.0.1:7000"

    def __init__(self, answer: dict[str, Any] | None = None) -> None:
        self.told: list[tuple[str, dict[str, Any]]] = []
        self.asked: list[tuple[str, dict[str, Any]]] = []
        self.answer = answer or {}
        self.engines: list[tuple[str, bool]] = []  # engine_seen calls

    def tell(self, op: str, body: Mapping[str, Any]) -> None:
        self.told.append((op, dict(body)))

    async def ask(self, op: str, body: Mapping[str, Any]) -> dict[str, Any]:
        self.asked.append((op, dict(body)))
        return self.answer

    def engine_seen(self, cp_id: str, up: bool) -> None:
        self.engines.append((cp_id, up))


def served_elsewhere(w: World, cp_id: str, state: CPState = CPState.ACTIVATED) -> None:
    cp = w.net.fleet.cps[cp_id]
    cp.remote, cp.owner, cp.state, cp.remote_engine = True, "10.0.0.2:7000", state, True


def test_every_engine_connection_is_told_to_the_other_processes() -> None:
    """TCP engines and OCPP chargers alike: the domain says when an engine comes and goes."""
    w = World()
    peers = FakePeers()
    w.net.fleet.peers = peers
    cp = w.connect("CP1")
    w.net.chargepoints.engine_lost("CP1", FakeLink())  # not its engine: nothing said
    w.net.chargepoints.engine_lost("CP1", cp.engine.link)
    assert peers.engines == [("CP1", True), ("CP1", False)]


def test_a_stop_of_a_cp_served_elsewhere_is_passed_on_not_carried_out() -> None:
    async def scenario() -> None:
        w = World(cps=2)
        peers = FakePeers()
        w.net.fleet.peers = peers
        w.connect("CP1")
        served_elsewhere(w, "CP2")
        await w.net.operator.stop(None, "operator")
        assert w.state("CP1") is CPState.STOPPED  # served here: stopped here
        assert w.state("CP2") is CPState.ACTIVATED  # its owner stops it
        assert peers.told == [("hold", {"cp_id": None, "stopped": True})]
        state_changes = [kw["cp_id"] for name, kw in w.writer.work if name == "persist_state"]
        assert "CP2" not in state_changes
        await w.net.operator.revoke_key("CP2", "operator")
        assert peers.told[-1] == ("revoke", {"cp_id": "CP2"})

    run(scenario())


def test_what_another_process_passes_on_acts_only_on_cps_served_here() -> None:
    async def scenario() -> None:
        w = World(cps=2)
        w.net.fleet.peers = FakePeers()
        w.connect("CP1")
        served_elsewhere(w, "CP2")
        ops = RemoteOps(w.net, lambda asked, reply: None)
        ops.handle({"op": "hold", "cp_id": None, "stopped": True, "from": "x"})
        assert w.state("CP1") is CPState.STOPPED
        assert w.state("CP2") is CPState.ACTIVATED
        ops.handle({"op": "revoke", "cp_id": "CP2", "from": "x"})
        assert w.net.fleet.cps["CP2"].holds == set()
        ops.handle({"op": "weather", "location": "Madrid", "alert": False, "from": "x"})
        ops.handle({"op": "nonsense", "from": "x"})  # logged and dropped
        ops.handle({"op": "hold", "from": "x"})  # malformed: logged and dropped

    run(scenario())


def test_weather_readings_reach_every_process() -> None:
    async def scenario() -> None:
        here, there = World(cps=1), World(cps=1)
        peers = FakePeers()
        here.net.fleet.peers = peers
        here.net.weather.reading("Madrid", 3.5, "COLD", "weather")
        assert peers.told == [
            (
                "reading",
                {
                    "location": "Madrid",
                    "temperature_c": 3.5,
                    "status": "COLD",
                    "reason": None,
                    "alert": False,
                },
            )
        ]
        ops = RemoteOps(there.net, lambda asked, reply: None)
        ops.handle({"op": "reading", **peers.told[0][1], "from": "x"})
        assert there.net.fleet.readings["Madrid"] == here.net.fleet.readings["Madrid"]
        ops.handle({"op": "reading", "location": "Oslo", "from": "x"})  # malformed: dropped
        assert "Oslo" not in there.net.fleet.readings

    run(scenario())


def test_a_request_at_a_cp_served_elsewhere_is_decided_by_its_owner() -> None:
    async def scenario() -> None:
        w = World(cps=2)
        peers = FakePeers({"session_id": "S-remote", "price_eur_kwh": "0.40"})
        w.net.fleet.peers = peers
        driver = w.driver()
        served_elsewhere(w, "CP2")
        s = await w.net.sessions.request("CP2", "D1", Decimal(5))
        assert (s.id, s.cp_id, s.driver_id) == ("S-remote", "CP2", "D1")
        assert peers.asked[0][0] == "request" and peers.asked[0][1]["cp_id"] == "CP2"
        assert w.writer.rows == {}  # no session written here: the owner wrote it
        peers.answer = error_reply(Conflict("charge point is busy", code=ErrorCode.CP_BUSY))
        await w.send(driver, M.CHARGE_REQUEST, cp_id="CP2")
        assert fl(driver).last(M.CHARGE_DENIED)["code"] == "cp_busy"

    run(scenario())


def test_a_cp_no_process_serves_is_refused_here() -> None:
    async def scenario() -> None:
        w = World(cps=2)
        peers = FakePeers()
        w.net.fleet.peers = peers
        cp = w.net.fleet.cps["CP2"]
        cp.remote, cp.owner = True, None  # DISCONNECTED, served by nobody
        with pytest.raises(CentralError) as refused:
            await w.net.sessions.request("CP2", "D1")
        assert refused.value.code is ErrorCode.CP_UNAVAILABLE
        assert peers.asked == []

    run(scenario())


def test_a_driver_connected_elsewhere_is_told_there() -> None:
    async def scenario() -> None:
        w = World(cps=1)
        peers = FakePeers()
        w.net.fleet.peers = peers
        assert not w.net.fleet.tell_driver("D9", M.TICKET, {"session_id": "S1"})
        assert peers.told == [
            ("to_driver", {"driver_id": "D9", "type": "ticket", "body": {"session_id": "S1"}})
        ]
        driver = w.driver("D9")
        RemoteOps(w.net, lambda asked, reply: None).handle(
            {"op": "to_driver", "driver_id": "D9", "type": "ticket", "body": {"session_id": "S1"}}
        )
        assert fl(driver).last(M.TICKET) == {"session_id": "S1"}
        assert ("mark_delivered", {"session_ids": ["S1"]}) in w.writer.work

    run(scenario())


def test_sessions_shown_for_cps_served_elsewhere_never_expire_here() -> None:
    w = World(cps=1)
    served_elsewhere(w, "CP1", CPState.ACTIVATED)
    w.net.fleet.cps["CP1"].session = ActiveSession("S1", "CP1", "D1", Decimal("0.4"), None)
    w.clock.advance(10_000)
    w.net.sessions.expire()
    assert w.writer.work == []


def test_an_owners_refusal_travels_back_with_its_code_and_status() -> None:
    error = error_from(error_reply(Conflict("busy", code=ErrorCode.DRIVER_BUSY)))
    assert (type(error), error.code, error.message) == (Conflict, ErrorCode.DRIVER_BUSY, "busy")
    assert error_from({"error": "???", "status": 999}).code is ErrorCode.INTERNAL


def test_an_operator_stop_of_a_session_served_elsewhere_settles_it_once() -> None:
    async def scenario() -> None:
        w = World(cps=1)
        served_elsewhere(w, "CP1", CPState.SUPPLYING)
        w.net.fleet.cps["CP1"].session = ActiveSession("S1", "CP1", "D1", Decimal("0.4"), None)
        w.writer.rows["S1"] = {
            "session_id": "S1",
            "cp_id": "CP1",
            "driver_id": "D1",
            "price": Decimal("0.4"),
            "status": "ended",  # the owner settled it
            "kwh": Decimal(3),
            "started_at": None,
        }
        peers = FakePeers({"ticket": {"session_id": "S1"}})
        w.net.fleet.peers = peers
        ticket = await w.net.operator.stop_session("S1", "operator")
        assert (ticket.session_id, ticket.energy_kwh) == ("S1", Decimal(3))
        assert peers.asked == [("stop_session", {"session_id": "S1", "actor": "operator"})]
        assert w.writer.settlements == []  # settled by its owner, not again here

        # An owner that does not answer: the session is settled here, once.
        w.writer.rows["S1"]["status"] = "supplying"

        async def silent(op: str, body: Mapping[str, Any]) -> dict[str, Any]:
            raise Conflict("the Central serving this charge point did not answer")

        peers.ask = silent  # type: ignore[method-assign]
        await w.net.operator.stop_session("S1", "operator")
        await w.net.operator.stop_session("S1", "operator")
        assert w.writer.settlements == ["S1"]

    run(scenario())
