"""The board's view model: a snapshot, then events, give the tiles a person should see."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from common.events import EventType
from tests.unit.web.fakes import T0, cp, event
from web_ui.feed import feed_item_from_audit
from web_ui.view import Board, Changes

E = EventType


def board(*cps: dict[str, Any], **kw: Any) -> Board:
    return Board.from_snapshot(
        cps or [cp("CP1"), cp("CP2", "DISCONNECTED", location="Bilbao")],
        kw.get("drivers", [{"id": "D1", "connected": True}, {"id": "D2", "connected": False}]),
        kw.get("weather", {"alerts": [], "readings": {}}),
        kw.get("tickets", []),
        T0,
    )


def test_snapshot_builds_tiles_drivers_and_weather() -> None:
    b = board(
        cp("CP1", location="Madrid"),
        cp("CP2", "STOPPED", location="Oslo", stopped_by=["weather"]),
        weather={
            "alerts": ["Oslo"],
            "readings": {"Madrid": {"temperature_c": 21.5, "status": "ok", "alert": False}},
        },
    )
    assert [t.id for t in b.visible_tiles()] == ["CP1", "CP2"]
    assert b.tiles["CP2"].label == "Out of Order"
    assert b.drivers == {"D1"}  # only connected drivers are shown
    assert b.weather["Madrid"].temperature_c == 21.5 and not b.weather["Madrid"].alert
    assert b.weather["Oslo"].alert  # an alert without a reading still shows
    assert b.counts()["ACTIVATED"] == 1 and b.counts()["STOPPED"] == 1


def test_the_public_view_of_a_supplying_cp_is_a_tile_without_driver() -> None:
    """Without the operator token API_Central shows power and energy, no session or driver."""
    public = {
        "id": "CP1",
        "location": "Madrid",
        "price_eur_kwh": 0.4,
        "state": "SUPPLYING",
        "registered": True,
        "stopped_by": [],
        "session": {"kw": 11.0, "kwh": 2.5},
    }
    b = Board.from_snapshot([public], [], {"alerts": [], "readings": {}}, [], T0)
    session = b.tiles["CP1"].session
    assert session is not None and (session.kw, session.kwh) == (11.0, 2.5)
    assert session.driver_id is None and session.session_id == ""


def test_a_charge_goes_from_authorised_to_supplying_with_rising_figures_then_a_ticket() -> None:
    b = board()
    changes = b.apply(event(E.SESSION_AUTHORIZED, cp_id="CP1", driver_id="D1", session_id="S1"))
    assert changes.tiles == {"CP1"} and "sessions" in changes.panels
    assert b.tiles["CP1"].session is not None and b.tiles["CP1"].session.status == "authorized"

    b.apply(event(E.SESSION_STARTED, at=2, cp_id="CP1", driver_id="D1", session_id="S1"))
    b.apply(
        event(
            E.CP_STATE_CHANGED, at=2.1, cp_id="CP1", data={"from": "ACTIVATED", "to": "SUPPLYING"}
        )
    )
    tile = b.tiles["CP1"]
    assert tile.state == "SUPPLYING" and tile.label == "Supplying"
    assert tile.session is not None and tile.session.status == "supplying"

    for i, kwh in enumerate((0.5, 1.0, 2.5)):
        progress = {
            "session_id": "S1",
            "cp_id": "CP1",
            "driver_id": "D1",
            "kw": 11.0,
            "kwh": kwh,
            "eur": round(kwh * 0.4, 2),
            "price_eur_kwh": 0.4,
        }
        changes = b.apply(
            event(E.SESSION_PROGRESS, at=3 + i, cp_id="CP1", session_id="S1", data=progress)
        )
        assert changes.tiles == {"CP1"}
    session = b.tiles["CP1"].session
    assert session is not None
    assert (session.kw, session.kwh, session.eur, session.driver_id) == (11.0, 2.5, 1.0, "D1")
    assert [t.id for t in b.sessions()] == ["CP1"]

    b.apply(
        event(
            E.CP_STATE_CHANGED,
            at=7,
            cp_id="CP1",
            data={"from": "SUPPLYING", "to": "ACTIVATED", "reason": "supply ended: unplugged"},
        )
    )
    assert b.tiles["CP1"].state == "ACTIVATED" and b.tiles["CP1"].session is None
    ticket = {"session_id": "S1", "cp_id": "CP1", "driver_id": "D1", "kwh": 2.5, "total_eur": 1.0}
    changes = b.apply(event(E.SESSION_ENDED, at=7.1, cp_id="CP1", session_id="S1", data=ticket))
    assert changes.tickets == (ticket,) and "tickets" in changes.panels
    assert list(b.tickets) == [ticket]
    # The same ticket again (a relay replay with a new event id) is not listed twice.
    assert not b.apply(event(E.SESSION_ENDED, at=7.2, cp_id="CP1", session_id="S1", data=ticket))


def test_a_fault_turns_the_tile_broken_and_lands_in_the_feed() -> None:
    b = board()
    changes = b.apply(
        event(
            E.CP_STATE_CHANGED,
            cp_id="CP1",
            data={"from": "ACTIVATED", "to": "BROKEN", "reason": "engine KO"},
        )
    )
    tile = b.tiles["CP1"]
    assert (tile.state, tile.label, tile.fault, tile.engine_ok) == (
        "BROKEN",
        "Broken",
        "engine KO",
        False,
    )
    assert changes.tiles == {"CP1"} and {"summary", "feed"} <= changes.panels
    assert b.feed[0].level == "error" and "engine KO" in b.feed[0].text
    b.apply(event(E.CP_STATE_CHANGED, at=2, cp_id="CP1", data={"to": "ACTIVATED"}))
    assert b.tiles["CP1"].fault is None and b.tiles["CP1"].engine_ok


def test_a_fault_while_supplying_ends_the_live_session() -> None:
    b = board(cp("CP1", "SUPPLYING", session={"session_id": "S1", "driver_id": "D1", "kwh": 3.0}))
    assert b.tiles["CP1"].session is not None
    b.apply(event(E.CP_STATE_CHANGED, cp_id="CP1", data={"from": "SUPPLYING", "to": "BROKEN"}))
    assert b.tiles["CP1"].state == "BROKEN" and b.tiles["CP1"].session is None


def test_events_older_than_the_snapshot_do_not_move_a_tile_back() -> None:
    b = board(cp("CP1", "STOPPED"))
    stale = event(E.CP_STATE_CHANGED, at=-0.5, cp_id="CP1", data={"to": "ACTIVATED"})
    assert not b.apply(stale)
    assert b.tiles["CP1"].state == "STOPPED"
    assert b.apply(event(E.CP_STATE_CHANGED, at=0.5, cp_id="CP1", data={"to": "ACTIVATED"}))
    assert b.tiles["CP1"].state == "ACTIVATED"


def test_operator_stop_price_and_key_revocation() -> None:
    b = board()
    b.apply(
        event(
            E.CP_STATE_CHANGED, cp_id="CP1", data={"to": "STOPPED", "reason": "stopped by operator"}
        )
    )
    assert b.tiles["CP1"].label == "Out of Order" and b.tiles["CP1"].reason == "stopped by operator"
    changes = b.apply(event(E.CP_PRICE_CHANGED, cp_id="CP1", data={"from": 0.4, "to": 0.55}))
    assert changes.tiles == {"CP1"} and b.tiles["CP1"].price_eur_kwh == 0.55
    b.apply(event(E.CP_KEY_REVOKED, cp_id="CP1", actor="operator"))
    assert b.tiles["CP1"].key_status == "revoked"
    assert b.feed[0].text == "CP1: key revoked" and b.feed[0].level == "warning"
    b.apply(event(E.CP_AUTHENTICATED, at=3, cp_id="CP1", data={"role": "monitor"}))
    assert b.tiles["CP1"].key_status == "active"


def test_weather_changes_update_the_panel_and_the_tiles_at_that_location() -> None:
    b = board()
    changes = b.apply(
        event(E.WEATHER_READING, data={"location": "Bilbao", "temperature_c": 3.0, "status": "ok"})
    )
    assert changes.tiles == {"CP2"} and changes.panels == {"weather"}
    changes = b.apply(
        event(E.WEATHER_ALERT, at=2, data={"location": "Bilbao", "temperature_c": -2.0})
    )
    assert b.weather["Bilbao"].alert and b.weather["Bilbao"].temperature_c == -2.0
    assert "feed" in changes.panels and "Weather alert in Bilbao" in b.feed[0].text
    b.apply(event(E.WEATHER_CLEARED, at=3, data={"location": "Bilbao"}))
    assert not b.weather["Bilbao"].alert
    # The same reading again changes nothing on screen.
    reading = {"location": "Bilbao", "temperature_c": -2.0, "status": "ok"}
    b.apply(event(E.WEATHER_READING, at=4, data=reading))
    assert not b.apply(event(E.WEATHER_READING, at=5, data=reading))


def test_drivers_registrations_and_unknown_cps() -> None:
    b = board()
    assert b.apply(event(E.DRIVER_AUTHENTICATED, driver_id="D9")).panels == {"drivers"}
    assert "D9" in b.drivers
    assert not b.apply(event(E.DRIVER_AUTHENTICATED, at=2, driver_id="D9"))

    b.apply(event(E.CP_REGISTERED, cp_id="CP7", data={"location": "Lyon", "price_eur_kwh": "0.3"}))
    assert b.tiles["CP7"].state == "DISCONNECTED" and b.tiles["CP7"].price_eur_kwh == 0.3
    b.apply(event(E.CP_DEREGISTERED, at=2, cp_id="CP7", data={"by": "operator"}))
    assert "CP7" not in [t.id for t in b.visible_tiles()]

    # A state change of a CP the snapshot lacks: remembered, so a new snapshot is taken.
    assert not b.apply(event(E.CP_STATE_CHANGED, cp_id="CP8", data={"to": "ACTIVATED"}))
    assert b.missing == {"CP8"}
    # An auth failure names ids that may not exist: no snapshot for those.
    b.apply(event(E.CP_AUTH_FAILED, cp_id="GHOST", actor="GHOST", data={"reason": "unknown"}))
    assert b.missing == {"CP8"} and "GHOST" in b.feed[0].text


def test_resync_reports_only_what_differs() -> None:
    old = board()
    same = board()
    assert not same.changes_since(old)
    new = board(cp("CP1", "BROKEN"), cp("CP2", "DISCONNECTED", location="Bilbao"))
    changes = new.changes_since(old)
    assert changes.tiles == {"CP1"} and {"summary", "sessions"} <= changes.panels
    gone = board(cp("CP2", "DISCONNECTED", location="Bilbao"), drivers=[])
    changes = gone.changes_since(old)
    assert "CP1" in changes.tiles and "drivers" in changes.panels


def test_changes_combine() -> None:
    a = Changes(frozenset({"CP1"}), frozenset({"summary"}))
    b = Changes(frozenset({"CP2"}), frozenset({"feed"}), ({"session_id": "S"},))
    both = a | b
    assert both.tiles == {"CP1", "CP2"} and both.panels == {"summary", "feed"}
    assert both.tickets == ({"session_id": "S"},) and not Changes()


def test_feed_from_the_audit_log_matches_the_same_event_from_the_topic() -> None:
    e = event(E.ERROR, cp_id="CP1", data={"reason": "garbage frame"})
    entry = {
        "id": 7,
        "ts": (T0 + timedelta(seconds=1)).isoformat(),
        "actor": "central",
        "action": "error",
        "cp_id": "CP1",
        "params": {"reason": "garbage frame"},
    }
    item = feed_item_from_audit(entry)
    assert item is not None and item.text == "CP1: garbage frame"
    b = Board.from_snapshot([cp("CP1")], [], {}, [], T0, [item])
    assert not b.apply(e)  # already in the feed: not listed twice
    assert len(b.feed) == 1
    assert feed_item_from_audit({**entry, "action": "session.progress"}) is None
    assert feed_item_from_audit({**entry, "action": "no.such.thing"}) is None
