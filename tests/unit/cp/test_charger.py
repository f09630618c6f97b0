"""The engine's domain core, with a fake Central, a fake clock and a real journal file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from common.chargepoint.terminal import Level
from common.protocol.messages import ErrorBody, ErrorCode, MessageType
from cp_engine.charger import Charger
from cp_engine.journal import ActiveSupply, Journal, JournalState
from cp_engine.supply import SupplyState
from tests.support.clock import FakeClock

T = MessageType


@dataclass
class Fakes:
    online: bool = True
    clock: FakeClock = field(default_factory=FakeClock)
    sent: list[tuple[MessageType, dict[str, Any]]] = field(default_factory=list)
    said: list[tuple[Level, str]] = field(default_factory=list)

    def send(self, msg_type: MessageType, body: dict[str, Any]) -> bool:
        if self.online:
            self.sent.append((msg_type, body))
        return self.online

    def notify(self, level: Level, text: str) -> None:
        self.said.append((level, text))

    def types(self) -> list[MessageType]:
        return [t for t, _ in self.sent]

    def last(self, msg_type: MessageType) -> dict[str, Any]:
        return [b for t, b in self.sent if t is msg_type][-1]

    def screen(self) -> str:
        return "\n".join(text for _, text in self.said)


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.json")


def make(fakes: Fakes, journal: Journal, **kw: Any) -> Charger:
    charger = Charger(journal, fakes.send, fakes.notify, speed=3600.0, clock=fakes.clock, **kw)
    charger.recover()
    charger.set_supervised(True)
    return charger


def authorize(charger: Charger, session_id: str = "S1", **body: Any) -> bool:
    return charger.authorize(
        {"session_id": session_id, "driver_id": "D1", "price_eur_kwh": 0.4, **body}
    )


def test_authorise_plug_meter_unplug_ticket(fakes: Fakes, journal: Journal) -> None:
    charger = make(fakes, journal)
    assert authorize(charger)
    assert fakes.sent == [(T.CHARGE_AUTHORIZED, {"session_id": "S1"})]
    charger.plug()
    assert fakes.last(T.SUPPLY_STARTED) == {"session_id": "S1"}
    assert journal.load()[0].active == ActiveSupply("S1", "D1", 0.4, None, 0.0)
    fakes.clock.advance(0.5)  # half a real second at 3600x: half an hour at 11 kW
    charger.tick()
    assert fakes.last(T.TELEMETRY) == {"session_id": "S1", "kw": 11.0, "kwh": 5.5}
    assert journal.load()[0].active.kwh == 5.5  # type: ignore[union-attr]
    assert "Supplying S1: 11 kW, 5.500 kWh, 2.20 €" in fakes.screen()
    fakes.clock.advance(0.1)
    charger.unplug()
    assert fakes.last(T.SUPPLY_ENDED) == {"session_id": "S1", "kwh": 6.6, "reason": "unplugged"}
    assert charger.state is SupplyState.IDLE
    assert len(journal.load()[0].unsettled) == 1  # until the ticket comes
    charger.ticket({"session_id": "S1", "kwh": 6.6, "total_eur": 2.64, "reason": "unplugged"})
    assert journal.load()[0] == JournalState()
    assert "Ticket for session S1: 6.600 kWh, 2.64 € (unplugged); settled" in fakes.screen()


def test_target_from_the_authorisation_or_the_default(fakes: Fakes, journal: Journal) -> None:
    charger = make(fakes, journal, default_target=2.0)
    authorize(charger)
    charger.plug()
    fakes.clock.advance(1.0)
    charger.tick()
    assert fakes.last(T.TELEMETRY)["kwh"] == 2.0
    assert fakes.last(T.SUPPLY_ENDED) == {
        "session_id": "S1",
        "kwh": 2.0,
        "reason": "target_reached",
    }
    charger.ticket({"session_id": "S1"})
    authorize(charger, "S2", target_kwh=0.5)
    charger.plug()
    fakes.clock.advance(1.0)
    charger.tick()
    assert fakes.last(T.SUPPLY_ENDED)["kwh"] == 0.5


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        (lambda c: c.set_health(False, "x"), "charge point is out of order"),
        (lambda c: c.set_supervised(False), "charge point has no monitor"),
        (lambda c: authorize(c, "S0"), "charge point is busy"),
    ],
)
def test_authorisations_refused(fakes: Fakes, journal: Journal, setup: Any, reason: str) -> None:
    charger = make(fakes, journal)
    setup(charger)
    fakes.sent.clear()
    assert not authorize(charger)
    assert fakes.sent == [(T.CHARGE_DENIED, {"session_id": "S1", "reason": reason})]


def test_a_fault_stops_the_supply_at_once(fakes: Fakes, journal: Journal) -> None:
    charger = make(fakes, journal)
    authorize(charger)
    charger.plug()
    fakes.clock.advance(0.2)
    assert charger.set_health(False, "overheating")
    assert fakes.last(T.SUPPLY_ENDED) == {"session_id": "S1", "kwh": 2.2, "reason": "fault"}
    assert not charger.set_health(False, "again")  # no change
    assert "Engine KO: overheating" in fakes.screen()
    assert charger.set_health(True)
    assert charger.healthy and charger.fault == ""


def test_stop_from_central(fakes: Fakes, journal: Journal) -> None:
    charger = make(fakes, journal)
    authorize(charger)
    charger.stop({"session_id": "S1", "reason": "expired"})  # not plugged: nothing to report
    assert charger.state is SupplyState.IDLE and T.SUPPLY_ENDED not in fakes.types()
    authorize(charger, "S2")
    charger.plug()
    charger.stop({"session_id": "other", "reason": "fault"})  # not ours
    assert charger.state is SupplyState.SUPPLYING
    charger.stop({"session_id": "S2", "reason": "stopped_by_operator"})
    assert fakes.last(T.SUPPLY_ENDED)["reason"] == "stopped_by_operator"


def test_central_down_keeps_the_report_and_delivers_it_on_reconnection(
    fakes: Fakes, journal: Journal
) -> None:
    charger = make(fakes, journal)
    authorize(charger)
    charger.plug()
    fakes.online = False
    fakes.clock.advance(0.1)
    charger.unplug()
    assert "Central unreachable, kept in the journal" in fakes.screen()
    fakes.online = True
    charger.connected()
    assert fakes.sent[-2:] == [
        (T.STATUS, {"session_id": "S1", "supplying": False, "kwh": 1.1}),
        (T.SUPPLY_ENDED, {"session_id": "S1", "kwh": 1.1, "reason": "unplugged"}),
    ]
    fakes.sent.clear()
    fakes.clock.advance(4.9)
    charger.tick()
    assert fakes.sent == []  # not yet: the first repeat is after 5 s
    fakes.clock.advance(0.2)
    charger.tick()
    assert fakes.types() == [T.SUPPLY_ENDED]


def test_a_restart_reports_the_cut_supply_and_says_so(fakes: Fakes, journal: Journal) -> None:
    journal.save(JournalState().start(ActiveSupply("S9", "D1", 0.4, None, 3.25)))
    charger = make(fakes, journal)
    assert "session S9 was cut short by a restart at 3.250 kWh" in fakes.screen()
    charger.connected()
    assert fakes.sent == [
        (T.STATUS, {"session_id": "S9", "supplying": False, "kwh": 3.25}),
        (T.SUPPLY_ENDED, {"session_id": "S9", "kwh": 3.25, "reason": "engine_restart"}),
    ]


def test_status_after_connecting_while_supplying(fakes: Fakes, journal: Journal) -> None:
    charger = make(fakes, journal)
    authorize(charger)
    charger.plug()
    fakes.sent.clear()
    charger.connected()
    assert fakes.sent == [(T.STATUS, {"session_id": "S1", "supplying": True, "kwh": 0.0})]


def test_a_report_central_does_not_know_is_dropped(fakes: Fakes, journal: Journal) -> None:
    journal.save(JournalState().start(ActiveSupply("S9", None, 0.4, None, 1.0)))
    charger = make(fakes, journal)
    charger.refused(ErrorBody(ErrorCode.UNKNOWN_SESSION, "unknown session S8", "S8"))
    assert journal.load()[0] != JournalState()  # another session's refusal keeps S9
    charger.refused(ErrorBody(ErrorCode.UNKNOWN_SESSION, "whatever the wording", "S9"))
    assert journal.load()[0] == JournalState()
    charger.refused(ErrorBody(ErrorCode.NO_SESSION, "telemetry for a session not supplied"))
    assert "Central: telemetry for a session not supplied (no_session)" in fakes.screen()


def test_user_mistakes_are_explained(fakes: Fakes, journal: Journal) -> None:
    charger = make(fakes, journal)
    charger.plug()
    charger.unplug()
    authorize(charger)
    charger.unplug()
    charger.request_charge(None)
    assert "Cannot plug in: no authorisation" in fakes.screen()
    assert "Cannot unplug: nothing is plugged" in fakes.screen()
    assert "Cannot unplug: the vehicle is not plugged in yet" in fakes.screen()
    assert "Cannot request a charge while AUTHORIZED" in fakes.screen()


def test_request_a_charge_from_the_cp(fakes: Fakes, journal: Journal) -> None:
    charger = make(fakes, journal, default_target=7.0)
    charger.request_charge(None)
    charger.request_charge(3.0)
    assert fakes.sent == [
        (T.CHARGE_REQUEST, {"target_kwh": 7.0}),
        (T.CHARGE_REQUEST, {"target_kwh": 3.0}),
    ]
    fakes.online = False
    charger.request_charge(None)
    assert "Not connected to Central" in fakes.screen()


def test_shutdown_reports_a_running_supply(fakes: Fakes, journal: Journal) -> None:
    charger = make(fakes, journal)
    authorize(charger)
    charger.plug()
    charger.shutdown()
    assert fakes.last(T.SUPPLY_ENDED)["reason"] == "engine_shutdown"


def test_a_supply_central_refused_to_start_is_stopped_unreported(
    fakes: Fakes, journal: Journal
) -> None:
    charger = make(fakes, journal)
    authorize(charger)
    charger.plug()
    charger.refused(ErrorBody(ErrorCode.NO_SESSION, "no authorised session", "S0"))
    assert charger.state is SupplyState.SUPPLYING  # about another session: carry on
    charger.refused(ErrorBody(ErrorCode.NO_SESSION, "any wording at all", "S1"))
    assert charger.state is SupplyState.IDLE
    assert journal.load()[0] == JournalState()
    assert T.SUPPLY_ENDED not in fakes.types()
    assert "Central refused supply of session S1" in fakes.screen()


def test_losing_the_monitor_stops_the_supply(fakes: Fakes, journal: Journal) -> None:
    charger = make(fakes, journal)
    authorize(charger)
    charger.set_supervised(False)
    assert charger.state is SupplyState.IDLE and T.SUPPLY_ENDED not in fakes.types()
    charger.set_supervised(True)
    authorize(charger, "S2")
    charger.plug()
    fakes.clock.advance(0.1)
    charger.set_supervised(False)
    assert fakes.last(T.SUPPLY_ENDED) == {"session_id": "S2", "kwh": 1.1, "reason": "monitor_lost"}
    assert "Monitor lost: stopping the supply" in fakes.screen()
