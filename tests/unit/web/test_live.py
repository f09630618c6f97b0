"""The live board without a broker or a network: fake Central, scripted consumer, real fan-out."""

from __future__ import annotations

import json
import time
from typing import Any, cast

from common.events import EventType
from tests.unit.web.fakes import T0, FakeCentral, FakeConsumer, cp, event
from web_ui.central_client import CentralClient
from web_ui.live import Hub, LiveBoard, Status, Subscription, sse
from web_ui.view import Board


class TextRenderer:
    """Renders a tile as ``id:STATE`` and a panel as its name: easy to assert on."""

    def tile(self, board: Board, cp_id: str) -> str:
        tile = board.tiles.get(cp_id)
        return f"{cp_id}:{tile.state}" if tile and tile.registered else ""

    def panel(self, board: Board, name: str) -> str:
        return name


def decode(message: bytes | None) -> tuple[str, Any]:
    assert message, f"expected a message, got {message!r}"
    kind, data = message.decode().strip().split("\n")
    return kind.removeprefix("event: "), json.loads(data.removeprefix("data: "))


def next_of(sub: Subscription, kind: str, timeout: float = 5) -> Any:
    """The data of the next ``kind`` message, skipping others."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = sub.get(0.05)
        if message:
            got, data = decode(message)
            if got == kind:
                return data
    raise AssertionError(f"no {kind} message within {timeout} s")


def drain(sub: Subscription) -> list[tuple[str, Any]]:
    out = []
    while (message := sub.get(0)) not in (b"", None):
        out.append(decode(message))
    return out


def live_board(central: FakeCentral, **kw: Any) -> LiveBoard:
    live = LiveBoard(cast(CentralClient, central), now=lambda: T0, **kw)
    live.set_renderer(TextRenderer())
    return live


def test_a_new_page_gets_a_snapshot_then_only_what_changes() -> None:
    central = FakeCentral()
    live = live_board(central)
    assert live.resync()
    sub = live.subscribe()
    assert sub is not None
    kind, snapshot = decode(sub.get(0))
    assert kind == "snapshot"
    assert [t["html"] for t in snapshot["tiles"]] == ["CP1:ACTIVATED", "CP2:DISCONNECTED"]
    assert snapshot["status"] == {"ok": True, "central": True, "broker": None, "message": ""}
    assert set(snapshot["panels"]) == {
        "summary",
        "drivers",
        "sessions",
        "weather",
        "feed",
        "tickets",
    }

    live.apply([event(EventType.CP_STATE_CHANGED, cp_id="CP2", data={"to": "ACTIVATED"})])
    sent = drain(sub)
    assert sent[0] == (
        "tile",
        {"id": "CP2", "state": "ACTIVATED", "label": "Available", "html": "CP2:ACTIVATED"},
    )
    assert ("panel", {"name": "summary", "html": "summary"}) in sent

    ticket = {"session_id": "S1", "cp_id": "CP1", "kwh": 1.0, "total_eur": 0.4}
    live.apply([event(EventType.SESSION_ENDED, cp_id="CP1", session_id="S1", data=ticket)])
    assert ("ticket", ticket) in drain(sub)

    # A resync agreeing with the events says nothing; one with a change sends that tile.
    central.cps[1]["state"] = "ACTIVATED"
    central.ended = [ticket]
    live.resync()
    assert drain(sub) == []
    central.cps[0]["state"] = "BROKEN"
    live.resync()
    assert [m for m in drain(sub) if m[0] == "tile"] == [
        ("tile", {"id": "CP1", "state": "BROKEN", "label": "Broken", "html": "CP1:BROKEN"})
    ]


def test_central_down_shows_in_the_status_and_recovery_takes_a_new_snapshot() -> None:
    central = FakeCentral()
    live = live_board(central)
    live.resync()
    sub = live.subscribe()
    assert sub is not None
    drain(sub)
    central.down = True
    assert not live.resync()
    kind, status = decode(sub.get(0))
    assert (
        kind == "status" and status["ok"] is False and "Central is unreachable" in status["message"]
    )
    board, current = live.view()
    assert [t.id for t in board.visible_tiles()] == ["CP1", "CP2"]  # the last known state stays
    assert not current.ok

    central.down = False
    central.cps.append(cp("CP3"))
    assert live.resync()
    sent = drain(sub)
    assert (
        "tile",
        {"id": "CP3", "state": "ACTIVATED", "label": "Available", "html": "CP3:ACTIVATED"},
    ) in sent
    assert ("status", {"ok": True, "central": True, "broker": None, "message": ""}) in sent


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
    )
    live.start()
    try:
        assert live.wait_ready(5)
        sub = live.subscribe()
        assert sub is not None
        assert decode(sub.get(1))[0] == "snapshot"
        consumer.push(
            event(EventType.CP_STATE_CHANGED, cp_id="CP1", data={"to": "BROKEN", "reason": "x"})
        )
        assert next_of(sub, "tile")["state"] == "BROKEN"
        assert live.status == Status(central=True, broker=True)

        up[0] = False  # the broker goes away: the pages are told
        assert next_of(sub, "status")["broker"] is False
        snapshots_before = central.calls.count(("chargepoints", None))
        up[0] = True  # back: a new snapshot, since events were missed meanwhile
        assert next_of(sub, "status")["ok"]
        deadline = time.monotonic() + 5
        while central.calls.count(("chargepoints", None)) == snapshots_before:
            assert time.monotonic() < deadline, "no snapshot after the broker came back"
            time.sleep(0.02)
    finally:
        live.stop()
    assert consumer.closed
    assert sub.get(0) is None or sub.closed  # the stream ends with the server


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
        sub = live.subscribe()
        assert sub is not None
        central.cps.append(cp("CP9"))  # registered after the snapshot
        started = time.monotonic()
        consumer.push(event(EventType.CP_STATE_CHANGED, cp_id="CP9", data={"to": "ACTIVATED"}))
        assert next_of(sub, "tile")["html"] == "CP9:ACTIVATED"
        assert time.monotonic() - started < 2
    finally:
        live.stop()


def test_a_page_that_stops_reading_is_dropped_and_the_rest_carry_on() -> None:
    hub = Hub(limit=2)
    slow, fast = Subscription(capacity=2), Subscription(capacity=100)
    assert hub.add(slow) and hub.add(fast)
    assert not hub.add(Subscription())  # the limit holds
    for i in range(5):
        hub.publish(sse("tick", i))
    assert slow.closed and len(hub) == 1
    assert [decode(fast.get(0))[1] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert fast.get(0) == b""  # nothing more: a keep-alive is due, not the end
    hub.close()
    assert fast.get(0) is None


def test_status_messages() -> None:
    assert Status().message == "Connecting to Central…"
    assert Status(central=True, broker=None).ok
    assert not Status(central=True, broker=False).ok
    assert "event stream" in Status(central=True, broker=False).message
    assert Status(central=True, broker=True).message == ""
