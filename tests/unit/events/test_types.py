"""The event envelope: JSON round trip and rejection of malformed values."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from common.events import Event, EventDecodeError, EventType


def test_round_trip_keeps_every_field() -> None:
    event = Event(
        EventType.SESSION_ENDED,
        "central",
        {"kwh": "12.5", "total_eur": "4.10", "nested": {"a": [1, 2]}},
        cp_id="CP1",
        driver_id="D7",
        session_id="S9",
        actor="operator",
        source_ip="10.0.0.9",
        ts=datetime(2026, 11, 21, 10, 0, 0, 123000, tzinfo=UTC),
    )
    back = Event.from_json(event.to_json())
    assert back == event
    assert back.key == "CP1"
    assert Event.from_json(event.to_json().encode()) == event


def test_optional_fields_are_left_out_of_the_json() -> None:
    event = Event(EventType.WEATHER_ALERT, "weather", driver_id="D1")
    obj = json.loads(event.to_json())
    assert set(obj) == {"event_id", "type", "ts", "source", "driver_id", "data"}
    assert event.key == "D1"


def test_time_travels_with_microsecond_precision() -> None:
    """The same precision as the audit hash, so an event can be matched to its entry."""
    ts = datetime(2026, 11, 21, 10, 0, 0, 123456, tzinfo=UTC)
    back = Event.from_json(Event(EventType.ERROR, "central", ts=ts).to_json())
    assert back.ts == ts
    assert back.ts.tzinfo is not None


GOOD = json.loads(Event(EventType.CP_REGISTERED, "registry", cp_id="CP1").to_json())


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        json.dumps({**GOOD, "type": "cp.exploded"}),
        json.dumps({**GOOD, "event_id": "not-a-uuid"}),
        json.dumps({**GOOD, "ts": "yesterday"}),
        json.dumps({**GOOD, "data": [1, 2]}),
        json.dumps({k: v for k, v in GOOD.items() if k != "source"}),
        json.dumps({k: v for k, v in GOOD.items() if k != "event_id"}),
    ],
)
def test_malformed_values_raise_event_decode_error(raw: str | bytes) -> None:
    with pytest.raises(EventDecodeError, match="malformed event"):
        Event.from_json(raw)
