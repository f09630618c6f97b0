"""The files a user edits while the office runs: locations and simulated temperatures.

Both accept JSON or a plain text form (``#`` starts a comment, blank lines are skipped):

    locations          Oslo                        ["Oslo", "Madrid"]
    temperatures       Oslo: -5                    {"Oslo": -5,
                       Madrid: 12 drift -0.5        "Madrid": {"temperature_c": 12, "drift": -0.5}}

Parsing is pure (text in, values out); :class:`WatchedFile` does the reading.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weather.errors import InvalidLocation

__all__ = [
    "MAX_LOCATION_LENGTH",
    "CitySpec",
    "FileFormatError",
    "WatchedFile",
    "add_location",
    "check_location",
    "parse_locations",
    "parse_temperatures",
    "remove_location",
    "write_atomically",
]

MAX_LOCATION_LENGTH = 64  # API_Central's limit for a location


class FileFormatError(ValueError):
    """A file does not parse; the message names the line."""


@dataclass(frozen=True)
class CitySpec:
    """A simulated city: its temperature when the file was read, and its drift per poll."""

    temperature_c: float
    drift_c: float | None = None


def check_location(name: str) -> str:
    """Return ``name`` stripped, or raise :class:`InvalidLocation` saying what is wrong.

    A location is a key in API_Central's URLs (``/api/weather/alerts/<location>``), so
    it may not contain ``/`` or control characters; ``#`` starts a comment in the files.
    """
    text = name.strip()
    if not text:
        raise InvalidLocation("a location name cannot be empty")
    if len(text) > MAX_LOCATION_LENGTH:
        raise InvalidLocation(f"a location name is at most {MAX_LOCATION_LENGTH} characters")
    if "/" in text or "#" in text or any(unicodedata.category(ch).startswith("C") for ch in text):
        raise InvalidLocation(f"{text!r}: '/', '#' and control characters are not allowed")
    return text


def _content_lines(text: str) -> list[tuple[int, str]]:
    out = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append((number, line))
    return out


def _is_json(text: str) -> bool:
    return text.lstrip().startswith(("[", "{"))


def _load_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"line {exc.lineno}: invalid JSON ({exc.msg})") from None


def parse_locations(text: str) -> list[str]:
    """Locations in file order, without duplicates.

    Raises:
        FileFormatError: invalid JSON, or a name :func:`check_location` refuses.
    """
    if _is_json(text):
        data = _load_json(text)
        if not isinstance(data, list) or not all(isinstance(x, str) for x in data):
            raise FileFormatError("a JSON locations file must be a list of names")
        entries = [(0, x) for x in data]
    else:
        entries = _content_lines(text)
    names: list[str] = []
    for number, raw in entries:
        try:
            name = check_location(raw)
        except InvalidLocation as exc:
            where = f"line {number}: " if number else ""
            raise FileFormatError(f"{where}{exc}") from None
        if name not in names:
            names.append(name)
    return names


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{what} must be a number")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be a finite number")
    return number


def _json_city(value: Any) -> CitySpec:
    if isinstance(value, dict):
        unknown = set(value) - {"temperature_c", "drift"}
        if unknown or "temperature_c" not in value:
            raise ValueError('expected {"temperature_c": T} with an optional "drift"')
        drift = value.get("drift")
        return CitySpec(
            _number(value["temperature_c"], "temperature_c"),
            None if drift is None else _number(drift, "drift"),
        )
    return CitySpec(_number(value, "the temperature"))


def _text_city(rest: str) -> CitySpec:
    words = rest.split()
    if len(words) == 1:
        return CitySpec(_number(words[0], "the temperature"))
    if len(words) == 3 and words[1].lower() == "drift":
        return CitySpec(_number(words[0], "the temperature"), _number(words[2], "drift"))
    raise ValueError("expected 'City: TEMPERATURE' or 'City: TEMPERATURE drift DEGREES'")


def parse_temperatures(text: str) -> dict[str, CitySpec]:
    """Simulated temperatures per city.

    Raises:
        FileFormatError: the first problem, with its line number.
    """
    out: dict[str, CitySpec] = {}
    if _is_json(text):
        data = _load_json(text)
        if not isinstance(data, dict):
            raise FileFormatError("a JSON temperatures file must be an object {city: ...}")
        for city, value in data.items():
            try:
                out[check_location(city)] = _json_city(value)
            except (ValueError, InvalidLocation) as exc:
                raise FileFormatError(f"{city!r}: {exc}") from None
        return out
    for number, line in _content_lines(text):
        city, sep, rest = line.partition(":")
        try:
            if not sep:
                raise ValueError("expected 'City: TEMPERATURE'")
            out[check_location(city)] = _text_city(rest)
        except (ValueError, InvalidLocation) as exc:
            raise FileFormatError(f"line {number}: {exc}") from None
    return out


def add_location(text: str, name: str) -> str:
    """``text`` of a locations file with ``name`` added (the file keeps its form)."""
    if _is_json(text):
        data = _load_json(text)
        if not isinstance(data, list):
            raise FileFormatError("a JSON locations file must be a list of names")
        return json.dumps([*data, name], ensure_ascii=False, indent=2) + "\n"
    if text and not text.endswith("\n"):
        text += "\n"
    return f"{text}{name}\n"


def remove_location(text: str, name: str) -> str:
    """``text`` of a locations file without ``name`` (comments and other lines kept)."""
    if _is_json(text):
        data = _load_json(text)
        if not isinstance(data, list):
            raise FileFormatError("a JSON locations file must be a list of names")
        kept = [x for x in data if not (isinstance(x, str) and x.strip() == name)]
        return json.dumps(kept, ensure_ascii=False, indent=2) + "\n"
    kept_lines = [
        line for line in text.splitlines(keepends=True) if line.split("#", 1)[0].strip() != name
    ]
    return "".join(kept_lines)


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class WatchedFile:
    """A small file re-read on every :meth:`refresh`; says when its content changed.

    Files this small are cheaper to read than to reason about modification times, which
    some file systems keep to the second (an edit from -5 to +5 keeps the size).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.text: str | None = None
        self.error: str | None = None
        self._seen = False

    def refresh(self) -> bool:
        """Re-read the file. Returns True when its content (or its absence) changed."""
        try:
            text: str | None = self.path.read_text(encoding="utf-8")
            error = None
        except FileNotFoundError:
            text, error = None, f"{self.path} does not exist"
        except (OSError, UnicodeDecodeError) as exc:
            text, error = None, f"cannot read {self.path}: {getattr(exc, 'strerror', exc)}"
        changed = not self._seen or text != self.text or error != self.error
        self.text, self.error, self._seen = text, error, True
        return changed
