"""Parsing and editing the locations and temperatures files."""

from __future__ import annotations

from pathlib import Path

import pytest

from weather.errors import InvalidLocation
from weather.files import (
    CitySpec,
    FileFormatError,
    WatchedFile,
    add_location,
    check_location,
    parse_locations,
    parse_temperatures,
    remove_location,
    write_atomically,
)


def test_locations_text_with_comments_blanks_and_duplicates() -> None:
    text = "# cities with chargers\nOslo\n\n  Madrid  # HQ\nOslo\nSão Paulo\n"
    assert parse_locations(text) == ["Oslo", "Madrid", "São Paulo"]


def test_locations_json_list() -> None:
    assert parse_locations('["Oslo", " Madrid ", "Oslo"]') == ["Oslo", "Madrid"]
    assert parse_locations("") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"Oslo": 1}', "must be a list"),
        ('["Oslo", 3]', "must be a list"),
        ("[\n  ", "invalid JSON"),
        ("Oslo\n" + "x" * 65 + "\n", "line 2: a location name is at most 64"),
        ("Oslo/North\n", "line 1: 'Oslo/North'"),
    ],
)
def test_locations_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(FileFormatError, match=message):
        parse_locations(text)


@pytest.mark.parametrize("bad", ["", "   ", "a/b", "tab\there", "x" * 65, "#Oslo"])
def test_check_location_refuses(bad: str) -> None:
    with pytest.raises(InvalidLocation):
        check_location(bad)


def test_temperatures_text_form() -> None:
    text = "# edit me while it runs\nOslo: -5\nMadrid: 12.5 drift -0.5\n  Rome:+3 # warm\n"
    assert parse_temperatures(text) == {
        "Oslo": CitySpec(-5.0),
        "Madrid": CitySpec(12.5, -0.5),
        "Rome": CitySpec(3.0),
    }


def test_temperatures_json_form() -> None:
    text = '{"Oslo": -5, "Madrid": {"temperature_c": 12, "drift": 0.25}}'
    assert parse_temperatures(text) == {"Oslo": CitySpec(-5.0), "Madrid": CitySpec(12.0, 0.25)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Oslo -5\n", "line 1: expected 'City: TEMPERATURE'"),
        ("Oslo: cold\n", "line 1"),
        ("Oslo: 1\nBergen: nan\n", "line 2: the temperature must be a finite number"),
        ("Oslo: 1 drift\n", "drift DEGREES"),
        ('{"Oslo": true}', "'Oslo': the temperature must be a number"),
        ('{"Oslo": {"temp": 3}}', "temperature_c"),
        ("[1, 2]", "must be an object"),
        ('{"Oslo": ', "invalid JSON"),
    ],
)
def test_temperatures_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(FileFormatError, match=message):
        parse_temperatures(text)


def test_add_and_remove_keep_comments_and_form() -> None:
    text = "# watched\nOslo  # north\nMadrid"
    added = add_location(text, "Bergen")
    assert added == "# watched\nOslo  # north\nMadrid\nBergen\n"
    assert remove_location(added, "Oslo") == "# watched\nMadrid\nBergen\n"
    assert parse_locations(add_location('["Oslo"]', "Bergen")) == ["Oslo", "Bergen"]
    assert parse_locations(remove_location('["Oslo", "Bergen"]', "Oslo")) == ["Bergen"]


def test_watched_file_reports_changes_even_of_the_same_size(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    watched = WatchedFile(path)
    assert watched.refresh() and watched.text is None and "does not exist" in str(watched.error)
    assert not watched.refresh()
    write_atomically(path, "Oslo: -5\n")
    assert watched.refresh() and watched.text == "Oslo: -5\n"
    assert not watched.refresh()
    path.write_text("Oslo: +5\n", encoding="utf-8")
    assert watched.refresh() and watched.text == "Oslo: +5\n"
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
