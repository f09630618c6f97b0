"""The live board without a broker or a network: fake Central, scripted consumer, real fan-out."""

from __future__ import annotations

import json
import time
from typing import Any, cast

from common.events import Event, EventType
from tests.unit.web.fakes import T0, FakeCentral, FakeConsumer, cp, event
from web_ui.central_client import CentralClient
from web_ui.fanout import Subscription
from web_ui.fleet import Page, Query
from web_ui.live import LiveBoard, Status
from web_ui.view import Board


class TextRenderer:
    """Renders a tile as ``id:STATE``, a panel as its name, a list as its ids: easy to assert on."""

    def tile(self, board: Board, cp_id: str) -> str:
        tile = board.tiles.get(cp_id)
        return f"{cp_id}:{tile.state}" if tile and tile.registered else ""

    def panel(self, board: Board, name: str) -> str:
        return name

    def listing(self, board: Board, page: Page) -> str:
        return "list:" + ",".join(page.ids)


def decode(message: bytes | None) -> list[tuple[str, Any]]:
    """Every event of one write to the stream."""
    assert message, f"expected a message, got {message!r}"
    out = []
    for block in message.decode().strip().split("\n\n"):
        kind, data = block.split("\n")
        out.append((kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return out


def sent(live: LiveBoard, sub: Subscription) -> list[tuple[str, Any]]:
    """What ``sub``'s page is sent at the next frame (started now)."""
    live.flush()
    message = live.next_message(sub, 0)
    return decode(message) if message else []


def update(live: LiveBoard, sub: Subscription) -> dict[str, Any]:
    found = [data for kind, data in sent(live, sub) if kind == "update"]
    assert len(found) == 1, found
    return found[0]


def next_of(live: LiveBoard, sub: Subscription, kind: str, timeout: float = 5) -> Any:
    """The data of the next ``kind`` message, skipping others (the thread makes frames)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = live.next_message(sub, 0.05)
        for got, data in decode(message) if message else []:
            if got == kind:
                return data
    raise AssertionError(f"no {kind} message within {timeout} s")


def open_page(live: LiveBoard, kind: str = "board", **query: Any) -> tuple[Subscription, Any]:
    opened = live.subscribe(kind, Query.parse(query))
    assert opened is not None
    sub, first = opened
    [(got, snapshot)] = decode(first)
    assert got == "snapshot"
    return sub, snapshot


def state(cp_id: str, to: str, at: float = 1.0) -> Event:
    return event(EventType.CP_STATE_CHANGED, cp_id=cp_id, data={"to": to}, at=at)


def live_board(central: FakeCentral, **kw: Any) -> LiveBoard:
    live = LiveBoard(cast(CentralClient, central), now=lambda: T0, **kw)
    live.set_renderer(TextRenderer())
    return live


def test_a_new_page_gets_a_snapshot_then_only_what_changes() -> None:
    central = FakeCentral()
    live = live_board(central)
    assert live.resync()
    sub, snapshot = open_page(live)
    assert snapshot["list"]["html"] == "list:CP1,CP2"
    assert [(r["id"], r["state"]) for r in snapshot["list"]["rows"]] == [
        ("CP1", "ACTIVATED"),
        ("CP2", "DISCONNECTED"),
    ]
    assert snapshot["status"] == {"ok": True, "central": True, "broker": None, "message": ""}
    assert set(snapshot["panels"]) == {
        "summary",
        "map",
        "drivers",
        "sessions",
        "weather",
        "feed",
        "tickets",
    }
    assert sent(live, sub) == []  # nothing changed: nothing sent

    live.apply([state("CP2", "ACTIVATED")])
    data = update(live, sub)
    assert data["rows"] == [
        {"id": "CP2", "state": "ACTIVATED", "label": "Available", "html": "CP2:ACTIVATED"}
    ]
    assert set(data["panels"]) == {"summary"}  # the counts at once...
    assert "list" not in data  # the same rows in the same order: only the changed one
    [(kind, later)] = decode(live.next_message(sub, 5))  # ...the map once a second at most
    assert kind == "update" and set(later["panels"]) == {"map"} and later["rows"] == []
    assert live.next_message(sub, 0) == b""  # nothing else is held back

    ticket = {"session_id": "S1", "cp_id": "CP1", "kwh": 1.0, "total_eur": 0.4}
    revenue, _ = open_page(live, "revenue")
    live.apply([event(EventType.SESSION_ENDED, cp_id="CP1", session_id="S1", data=ticket)])
    assert "tickets" in update(live, sub)["panels"]
    assert (
        live.next_message(revenue, 0)
        == b'event: ticket\ndata: {"session_id":"S1","cp_id":"CP1","kwh":1.0,"total_eur":0.4}\n\n'
    )

    # A resync agreeing with the events says nothing; one with a change sends that row.
    central.cps[1]["state"] = "ACTIVATED"
    central.ended = [ticket]
    live.resync()
    assert sent(live, sub) == []
    central.cps[0]["state"] = "BROKEN"
    live.resync()
    assert update(live, sub)["rows"] == [
        {"id": "CP1", "state": "BROKEN", "label": "Broken", "html": "CP1:BROKEN"}
    ]


def test_a_page_that_falls_behind_gets_the_state_of_now_not_a_backlog() -> None:
    central = FakeCentral([cp(f"CP{i}") for i in range(10)])
    live = live_board(central)
    live.resync()
    sub, _ = open_page(live)
    flips = ("BROKEN", "ACTIVATED", "STOPPED")
    for i in range(3000):  # many frames pass while the page does not read
        live.apply([state(f"CP{i % 10}", flips[(i // 10) % 3], at=1 + i / 1000)])
        if i % 100 == 0:
            live.flush()
    message = live.next_message(sub, 0)
    [(kind, data)] = decode(message)
    assert kind == "update"
    final = flips[(2999 // 10) % 3]
    assert [(r["id"], r["state"]) for r in data["rows"]] == [(f"CP{i}", final) for i in range(10)]
    assert len(message or b"") < 2000  # one row per CP shown, whatever happened meanwhile
    assert live.next_message(sub, 0) == b""  # and nothing queued behind it


def test_a_filtered_page_follows_cps_in_and_out_of_its_view() -> None:
    central = FakeCentral([cp("CP1"), cp("CP2", "BROKEN"), cp("CP3", location="Bilbao")])
    live = live_board(central)
    live.resync()
    sub, snapshot = open_page(live, state="BROKEN")
    assert snapshot["list"]["html"] == "list:CP2"
    live.apply([state("CP3", "BROKEN")])
    data = update(live, sub)
    assert data["list"]["html"] == "list:CP2,CP3" and data["list"]["total"] == 2
    live.apply([state("CP2", "ACTIVATED")])
    assert update(live, sub)["list"]["html"] == "list:CP3"
    live.apply([state("CP1", "STOPPED")])  # not in view, never was: counts only
    data = update(live, sub)
    assert "list" not in data and data["rows"] == [] and "summary" in data["panels"]

    _, snapshot = open_page(live, size="1", page="2")
    assert snapshot["list"]["html"] == "list:CP2" and snapshot["list"]["total"] == 3
    _, snapshot = open_page(live, location="Bilbao")
    assert snapshot["list"]["html"] == "list:CP3"


def test_pages_showing_one_view_share_its_selection_per_change(monkeypatch: Any) -> None:
    import web_ui.fanout

    calls: list[Query] = []
    real = web_ui.fanout.select

    def counting(board: Board, query: Query) -> Page:
        calls.append(query)
        return real(board, query)

    monkeypatch.setattr(web_ui.fanout, "select", counting)
    central = FakeCentral([cp("CP1"), cp("CP2", "BROKEN")])
    live = live_board(central)
    live.resync()
    pages = [open_page(live, state="BROKEN")[0] for _ in range(3)]
    assert len(calls) == 1  # three pages opened, nothing changed: one selection
    live.apply([state("CP1", "BROKEN")])
    for sub in pages:  # each page sees the change
        assert update(live, sub)["list"]["html"] == "list:CP1,CP2"
    assert len(calls) == 2  # one more for the change, not one per page


def test_a_page_changing_its_view_is_spared_the_panels_it_has() -> None:
    live = live_board(FakeCentral())
    live.resync()
    _, snapshot = open_page(live)
    mark = snapshot["mark"]
    live.apply([state("CP2", "STOPPED")])  # the counts change, the other panels do not
    opened = live.subscribe("board", Query.parse({"state": "STOPPED"}), "page-0001", mark)
    assert opened is not None
    [(_, again)] = decode(opened[1])
    assert set(again["panels"]) == {"summary"} and again["list"]["html"] == "list:CP2"
    # The map changed too, but the page's is less than a second old: it comes later,
    # and the mark says the page's panels are not all as of now.
    assert again["mark"] == mark
    [(_, later)] = decode(live.next_message(opened[0], 5))
    assert set(later["panels"]) == {"map"} and later["mark"] != mark
    # A mark of another server process (restarted since) is worth nothing.
    other = live.subscribe("board", Query(), "page-0002", "0000000." + mark.split(".")[1])
    assert other is not None
    [(_, full)] = decode(other[1])
    assert set(full["panels"]) == set(snapshot["panels"])


def test_the_operator_page_gets_every_cp_state_without_html() -> None:
    central = FakeCentral()
    live = live_board(central)
    live.resync()
    sub, snapshot = open_page(live, "operator")
    assert [r["id"] for r in snapshot["rows"]] == ["CP1", "CP2"] and "list" not in snapshot
    live.apply([state("CP2", "BROKEN")])
    assert update(live, sub)["rows"] == [{"id": "CP2", "state": "BROKEN", "label": "Broken"}]


def test_a_page_that_opens_a_new_stream_closes_its_old_one_and_the_limit_holds() -> None:
    live = live_board(FakeCentral(), max_subscribers=2)
    live.resync()
    first = live.subscribe("board", Query(), client="page-0001")
    assert first is not None
    again = live.subscribe("board", Query.parse({"state": "BROKEN"}), client="page-0001")
    assert again is not None
    assert first[0].closed and live.next_message(first[0], 0) is None
    other = live.subscribe("board", Query(), client="page-0002")
    assert other is not None and len(live.hub) == 2
    assert live.subscribe("board", Query(), client="page-0003") is None  # full
    live.unsubscribe(other[0])
    assert live.subscribe("board", Query()) is not None
    live.stop()
    assert live.next_message(again[0], 0) is None  # the stream ends with the server


def test_events_that_arrive_while_a_snapshot_is_taken_are_not_lost() -> None:
    central = FakeCentral([cp("CP1"), cp("CP2")])
    live = live_board(central)
    live.resync()
    answer = central.chargepoints

    def slow_answer() -> list[dict[str, Any]]:
        stale = answer()  # Central answered before CP1 broke...
        live.apply([state("CP1", "BROKEN", at=5)])  # ...which the stream says meanwhile
        return stale

    central.chargepoints = slow_answer  # type: ignore[method-assign]
    assert live.resync()
    board, _ = live.view()
    assert board.tiles["CP1"].state == "BROKEN" and board.tiles["CP2"].state == "ACTIVATED"


def test_failed_snapshots_are_retried_less_and_less_often() -> None:
    central = FakeCentral()
    live = live_board(central, resync_interval=10)
    central.down = True
    waits = []
    for _ in range(6):
        before = time.monotonic()
        assert not live.resync()
        waits.append(round(live._next_snapshot - before))
    assert waits == [1, 2, 4, 8, 10, 10]


def test_central_down_shows_in_the_status_and_recovery_takes_a_new_snapshot() -> None:
    central = FakeCentral()
    live = live_board(central)
    live.resync()
    sub, _ = open_page(live)
    central.down = True
    assert not live.resync()
    [(kind, status)] = decode(live.next_message(sub, 0))  # at once, not at the next frame
    assert (
        kind == "status" and status["ok"] is False and "Central is unreachable" in status["message"]
    )
    board, current = live.view()
    assert [t.id for t in board.visible_tiles()] == ["CP1", "CP2"]  # the last known state stays
    assert not current.ok

    central.down = False
    central.cps.append(cp("CP3"))
    assert live.resync()
    got = dict(decode(live.next_message(sub, 0)))
    assert got["status"] == {"ok": True, "central": True, "broker": None, "message": ""}
    assert got["update"]["list"]["html"] == "list:CP1,CP2,CP3"


def test_the_thread_primes_the_consumer_snapshots_and_applies_events() -> None:
    central = FakeCentral()
    consumer = FakeConsumer()
    up = [True]
    live = live_board(
        central,
        bootstrap="broker:9092",
        consumer_factory=lambda: consumer,
        broker_probe=lambda: up[0],
        health_interval=0.05,
        frame_interval=0.05,
    )
    live.start()
    try:
        assert live.wait_ready(5)
        sub, _ = open_page(live)
        consumer.push(
            event(EventType.CP_STATE_CHANGED, cp_id="CP1", data={"to": "BROKEN", "reason": "x"})
        )
        assert next_of(live, sub, "update")["rows"][0]["state"] == "BROKEN"
        assert live.status == Status(central=True, broker=True)

        up[0] = False  # the broker goes away: the pages are told
        assert next_of(live, sub, "status")["broker"] is False
        snapshots_before = central.calls.count(("chargepoints", None))
        up[0] = True  # back: a new snapshot, since events were missed meanwhile
        assert next_of(live, sub, "status")["ok"]
        deadline = time.monotonic() + 5
        while central.calls.count(("chargepoints", None)) == snapshots_before:
            assert time.monotonic() < deadline, "no snapshot after the broker came back"
            time.sleep(0.02)
    finally:
        live.stop()
    assert consumer.closed
    assert live.next_message(sub, 0) is None  # the stream ends with the server


def test_an_event_about_an_unknown_cp_brings_a_new_snapshot_soon() -> None:
    central = FakeCentral([cp("CP1")])
    consumer = FakeConsumer()
    live = live_board(
        central,
        bootstrap="broker:9092",
        consumer_factory=lambda: consumer,
        broker_probe=lambda: True,
        resync_interval=60,  # so only the unknown CP can explain a new snapshot
    )
    live.start()
    try:
        assert live.wait_ready(5)
        sub, _ = open_page(live)
        central.cps.append(cp("CP9"))  # registered after the snapshot
        started = time.monotonic()
        consumer.push(event(EventType.CP_STATE_CHANGED, cp_id="CP9", data={"to": "ACTIVATED"}))
        assert next_of(live, sub, "update")["list"]["html"] == "list:CP1,CP9"
        assert time.monotonic() - started < 2
    finally:
        live.stop()


def test_status_messages() -> None:
    assert Status().message == "Connecting to Central…"
    assert Status(central=True, broker=None).ok
    assert not Status(central=True, broker=False).ok
    assert "event stream" in Status(central=True, broker=False).message
    assert Status(central=True, broker=True).message == ""
    # Central's API down while its events still arrive: the page says both.
    assert "kept current by the events" in Status(central=False, broker=True).message
    assert "events" not in Status(central=False, broker=None).message
