"""The board at fleet scale: which charge points a view shows, and the network's summary.

No I/O here. A :class:`Query` is what an operator asked for (state, location, id, the
"stopped by weather" shortcut, sort, page), read from a query string so that a view can
be bookmarked and shared; :func:`select` answers it over a :class:`~web_ui.view.Board`
with the ids of one page only, so a page never holds more than ``size`` charge points
whatever the fleet's size. :func:`summarise` counts the whole network per state and per
location for the summary and the map.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from web_ui.view import STATE_LABELS, Board, Tile

__all__ = [
    "DEFAULT_SIZE",
    "MAX_SIZE",
    "SORTS",
    "LocationSummary",
    "Page",
    "Query",
    "Summary",
    "select",
    "summarise",
    "weather_stopped",
]

DEFAULT_SIZE = 48  # fills 2, 3, 4 or 6 columns of tiles evenly
MAX_SIZE = 1000  # the benchmarks follow 1,000 CPs on one stream; people page
SIZES = (24, 48, 96, 192)  # what the page offers
SORTS = {
    "id": "Id",
    "state": "State (needs attention first)",
    "location": "Location",
}
# "Needs attention first": the order an operator works in.
_STATE_RANK = {"BROKEN": 0, "DISCONNECTED": 1, "STOPPED": 2, "SUPPLYING": 3, "ACTIVATED": 4}
_MAX_TEXT = 64


def weather_stopped(tile: Tile, board: Board) -> bool:
    """Stopped by a weather alert: Central says so, or its location is under one.

    Snapshots carry Central's reasons (``stopped_by``); between two, events only say why
    the CP last changed (an engine that recovers brings it back to STOPPED "engine
    recovered", the alert still in force), so the alerts in force decide as well.
    """
    if tile.state != "STOPPED":
        return False
    if "weather" in tile.stopped_by:
        return True
    weather = board.weather_at(tile.location)
    return weather is not None and weather.alert


@dataclass(frozen=True)
class Query:
    """One view of the fleet. Empty filters match everything."""

    states: frozenset[str] = frozenset()
    location: str = ""
    q: str = ""  # part of the id, any case
    weather: bool = False  # only CPs stopped by a weather alert
    sort: str = "id"
    page: int = 1
    size: int = DEFAULT_SIZE
    errors: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, args: Any) -> Query:
        """From a query string (a werkzeug ``MultiDict`` or a plain mapping).

        Whatever is wrong is dropped and said in ``errors``; the rest still applies, so
        a stale bookmark shows something useful rather than an error page.
        """
        errors: list[str] = []
        states = set()
        for value in _all(args, "state"):
            for part in value.split(","):
                part = part.strip().upper()
                if part in STATE_LABELS:
                    states.add(part)
                elif part:
                    errors.append(f"Unknown state {part[:_MAX_TEXT]!r}.")
        location = str(args.get("location") or "").strip()
        q = str(args.get("q") or "").strip()
        for name, value in (("Location", location), ("Id", q)):
            if len(value) > _MAX_TEXT or not value.isprintable():
                errors.append(f"{name} filters are 1-{_MAX_TEXT} printable characters.")
        location = location if len(location) <= _MAX_TEXT and location.isprintable() else ""
        q = q if len(q) <= _MAX_TEXT and q.isprintable() else ""
        sort = str(args.get("sort") or "id")
        if sort.removeprefix("-") not in SORTS:
            errors.append("Unknown sort order; sorted by id.")
            sort = "id"
        page = _int(args.get("page"), 1, 1, 1_000_000, "Page", errors)
        size = _int(args.get("size"), DEFAULT_SIZE, 1, MAX_SIZE, "Page size", errors)
        weather = str(args.get("why") or "") == "weather"
        return cls(frozenset(states), location, q, weather, sort, page, size, tuple(errors))

    @property
    def filtered(self) -> bool:
        return bool(self.states or self.location or self.q or self.weather)

    def params(self, **changes: Any) -> dict[str, Any]:
        """The query string of this view (defaults left out), with ``changes`` applied."""
        view = replace(self, **changes) if changes else self
        out: dict[str, Any] = {}
        if view.states:
            out["state"] = ",".join(s for s in STATE_LABELS if s in view.states)
        if view.location:
            out["location"] = view.location
        if view.q:
            out["q"] = view.q
        if view.weather:
            out["why"] = "weather"
        if view.sort != "id":
            out["sort"] = view.sort
        if view.page != 1:
            out["page"] = view.page
        if view.size != DEFAULT_SIZE:
            out["size"] = view.size
        return out

    def url(self, **changes: Any) -> str:
        """``?…`` for a link to this view with ``changes`` (``"?"`` alone: the default)."""
        return "?" + urlencode(self.params(**changes))

    def matches(self, tile: Tile, board: Board) -> bool:
        if not tile.registered:
            return False
        if self.states and tile.state not in self.states:
            return False
        if self.location and tile.location != self.location:
            return False
        if self.q and self.q.casefold() not in tile.id.casefold():
            return False
        return not self.weather or weather_stopped(tile, board)


@dataclass(frozen=True)
class Page:
    """One page of a view: the ids shown, in order, and where it sits in the whole."""

    query: Query
    ids: tuple[str, ...]
    total: int  # CPs matching the filters, on every page
    page: int  # the page shown (the last one when the query asked past it)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.query.size))

    @property
    def first(self) -> int:
        """1-based position of the first row shown (0 when none)."""
        return (self.page - 1) * self.query.size + 1 if self.ids else 0

    @property
    def last(self) -> int:
        return self.first + len(self.ids) - 1 if self.ids else 0


def _sort_key(sort: str) -> Any:
    key = sort.removeprefix("-")
    if key == "state":
        return lambda t: (_STATE_RANK.get(t.state, 9), t.id)
    if key == "location":
        return lambda t: (t.location.casefold(), t.id)
    return lambda t: t.id


def select(board: Board, query: Query) -> Page:
    """The page of ``board`` that ``query`` shows (10,000 CPs: a few milliseconds)."""
    rows = [t for t in board.tiles.values() if query.matches(t, board)]
    rows.sort(key=_sort_key(query.sort), reverse=query.sort.startswith("-"))
    pages = max(1, -(-len(rows) // query.size))
    page = min(query.page, pages)
    start = (page - 1) * query.size
    ids = tuple(t.id for t in rows[start : start + query.size])
    return Page(query, ids, len(rows), page)


@dataclass(frozen=True)
class LocationSummary:
    location: str
    counts: Mapping[str, int]  # per state, every state present
    total: int
    alert: bool  # a weather alert is in force there
    weather_stopped: int

    @property
    def attention(self) -> int:
        """CPs here that an operator should look at: broken, disconnected or stopped."""
        return sum(self.counts[s] for s in ("BROKEN", "DISCONNECTED", "STOPPED"))


@dataclass(frozen=True)
class Summary:
    """The whole network: counts per state and per location, and the alerts in force."""

    counts: Mapping[str, int]
    total: int
    locations: tuple[LocationSummary, ...]  # by name
    alerts: tuple[str, ...]  # locations under a weather alert, by name
    weather_stopped: int


def summarise(board: Board) -> Summary:
    counts = dict.fromkeys(STATE_LABELS, 0)
    per_location: dict[str, dict[str, int]] = {}
    stopped_here: dict[str, int] = {}
    for tile in board.tiles.values():
        if not tile.registered:
            continue
        counts[tile.state] = counts.get(tile.state, 0) + 1
        here = per_location.setdefault(tile.location, dict.fromkeys(STATE_LABELS, 0))
        here[tile.state] = here.get(tile.state, 0) + 1
        if weather_stopped(tile, board):
            stopped_here[tile.location] = stopped_here.get(tile.location, 0) + 1
    alerts = tuple(sorted(w.location for w in board.weather.values() if w.alert))
    for location in alerts:  # a place under alert shows even with no CP registered there
        per_location.setdefault(location, dict.fromkeys(STATE_LABELS, 0))
    locations = tuple(
        LocationSummary(
            name,
            here,
            sum(here.values()),
            name in alerts,
            stopped_here.get(name, 0),
        )
        for name, here in sorted(per_location.items(), key=lambda kv: kv[0].casefold())
    )
    return Summary(counts, sum(counts.values()), locations, alerts, sum(stopped_here.values()))


def _all(args: Any, name: str) -> Iterable[str]:
    if hasattr(args, "getlist"):
        return [str(v) for v in args.getlist(name)]
    value = args.get(name) if isinstance(args, Mapping) else None
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


def _int(value: Any, default: int, low: int, high: int, name: str, errors: list[str]) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(str(value))
    except ValueError:
        errors.append(f"{name} must be a whole number.")
        return default
    if not low <= number <= high:
        errors.append(f"{name} must be between {low} and {high:,}.")
        return min(max(number, low), high)
    return number
