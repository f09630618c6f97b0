"""The simulated provider, the location book, the menu and the HTTP endpoint (no sockets)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from tests.unit.weather.fakes import FakeCentral, FakeProvider
from weather.app import WeatherOffice
from weather.endpoint import create_app
from weather.errors import FailureKind, InvalidLocation, LocationsFileError, ProviderError
from weather.locations import LocationBook
from weather.menu import HELP, run_menu
from weather.providers import SimulatedProvider, parse_retry_after

TOKEN = "operator-token"


def poll(provider: SimulatedProvider, city: str) -> float | FailureKind:
    provider.start_poll()
    try:
        return provider.temperature(city)
    except ProviderError as exc:
        return exc.kind


def test_simulated_reads_the_file_and_follows_edits(tmp_path: Path) -> None:
    path = tmp_path / "temps.txt"
    sim = SimulatedProvider(path)
    assert poll(sim, "Oslo") is FailureKind.NO_DATA  # no file yet
    path.write_text("Oslo: -5\n", encoding="utf-8")
    assert poll(sim, "Oslo") == -5.0
    assert poll(sim, "Bergen") is FailureKind.UNKNOWN_CITY
    path.write_text("Oslo: +5\n", encoding="utf-8")
    assert poll(sim, "Oslo") == 5.0


def test_simulated_drift_per_poll_restarts_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "temps.json"
    path.write_text('{"Oslo": 2, "Rome": {"temperature_c": 10, "drift": 1}}', encoding="utf-8")
    sim = SimulatedProvider(path, drift=-0.5)
    assert [poll(sim, "Oslo") for _ in range(4)] == [2.0, 1.5, 1.0, 0.5]
    assert [poll(sim, "Rome") for _ in range(2)] == [10.0, 11.0]
    path.write_text('{"Oslo": 7}', encoding="utf-8")
    assert poll(sim, "Oslo") == 7.0


def test_simulated_keeps_the_last_good_values_of_a_broken_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "temps.txt"
    path.write_text("Oslo: -5\n", encoding="utf-8")
    sim = SimulatedProvider(path)
    assert poll(sim, "Oslo") == -5.0
    path.write_text("Oslo: -", encoding="utf-8")  # caught mid-edit
    with caplog.at_level(logging.WARNING):
        assert poll(sim, "Oslo") == -5.0
        assert poll(sim, "Oslo") == -5.0
    assert len(caplog.records) == 1 and "line 1" in caplog.records[0].getMessage()


def test_parse_retry_after() -> None:
    assert parse_retry_after("120", now=0) == 120.0
    assert parse_retry_after(None, now=0) is None
    assert parse_retry_after("soon", now=0) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


def test_book_edits_its_file_and_follows_hand_edits(tmp_path: Path) -> None:
    path = tmp_path / "locations.txt"
    path.write_text("# chargers\nOslo\n", encoding="utf-8")
    book = LocationBook(path)
    assert book.names() == ["Oslo"]
    assert book.add("Madrid") and not book.add(" Madrid ")
    assert path.read_text(encoding="utf-8") == "# chargers\nOslo\nMadrid\n"
    with path.open("a", encoding="utf-8") as fh:
        fh.write("Rome\n")
    book.refresh()
    assert book.names() == ["Oslo", "Madrid", "Rome"]
    assert book.remove("Oslo") and not book.remove("Oslo")
    assert path.read_text(encoding="utf-8") == "# chargers\nMadrid\nRome\n"
    with pytest.raises(InvalidLocation):
        book.add("a/b")


def test_book_refuses_to_edit_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "locations.json"
    path.write_text('["Oslo"]', encoding="utf-8")
    book = LocationBook(path)
    path.write_text('["Oslo", ', encoding="utf-8")
    book.refresh()
    assert book.names() == ["Oslo"]  # kept
    with pytest.raises(LocationsFileError, match="does not parse"):
        book.add("Rome")
    assert path.read_text(encoding="utf-8") == '["Oslo", '  # the user's file is untouched


def test_book_without_a_file_and_a_missing_file(tmp_path: Path) -> None:
    memory = LocationBook(initial=["Oslo", "Oslo", "Rome"])
    assert memory.names() == ["Oslo", "Rome"]
    missing = LocationBook(tmp_path / "later.txt")
    assert missing.names() == []
    assert missing.add("Oslo")
    assert (tmp_path / "later.txt").read_text(encoding="utf-8") == "Oslo\n"


def _office(*cities: str) -> WeatherOffice:
    return WeatherOffice(FakeProvider(Oslo=-2.0), FakeCentral(), LocationBook(initial=cities))


def test_menu_commands() -> None:
    wx = _office("Oslo")
    wx.poll()
    out = io.StringIO()
    quits: list[bool] = []
    lines = ["list", "add Rome", "add Rome", "remove Bergen", "add a/b", "what", "", "quit", "list"]
    run_menu(lines, wx, out, lambda: quits.append(True))
    text = out.getvalue()
    assert "Oslo" in text and "ALERT" in text and "-2.0 °C" in text
    assert "watching Rome" in text and "Rome is already watched" in text
    assert "Bergen is not watched" in text and "error: 'a/b'" in text and HELP in text
    assert quits == [True] and wx.book.names() == ["Oslo", "Rome"]
    assert text.count("Oslo") == 1  # nothing after quit


def test_menu_ends_quietly_at_end_of_input() -> None:
    quits: list[bool] = []
    run_menu([], _office(), io.StringIO(), lambda: quits.append(True))
    assert quits == []


def test_endpoint_lists_adds_and_removes() -> None:
    wx = _office("Oslo")
    wx.poll()
    client = create_app(wx, TOKEN).test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    listing = client.get("/locations").get_json()
    assert listing == {
        "locations": [
            {
                "location": "Oslo",
                "status": "ALERT",
                "temperature_c": -2.0,
                "reason": None,
                "alert": True,
                "delivered": True,
            }
        ]
    }
    assert client.post("/locations", json={"location": "Rome"}).status_code == 401
    created = client.post("/locations", json={"location": "Rome"}, headers=auth)
    assert created.status_code == 201 and created.get_json()["added"] is True
    assert client.post("/locations", json={"location": "Rome"}, headers=auth).status_code == 200
    bad = client.post("/locations", json={"location": "a/b"}, headers=auth)
    assert bad.status_code == 400 and bad.get_json()["error"] == "bad_request"
    assert client.post("/locations", data="Rome", headers=auth).status_code == 400
    status = [r["status"] for r in client.get("/locations").get_json()["locations"]]
    assert status == ["ALERT", "UNKNOWN"]  # Rome not polled yet
    assert client.delete("/locations/Rome").status_code == 401
    assert client.delete("/locations/Rome", headers=auth).status_code == 200
    missing = client.delete("/locations/Rome", headers=auth)
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    assert client.get("/health").get_json() == {"status": "ok", "provider": "fake"}
