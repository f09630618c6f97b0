"""The dashboard's view model: what the board shows, built from a snapshot and events.

No I/O here. :meth:`Board.from_snapshot` builds the board from API_Central's answers;
:meth:`Board.apply` folds one event from ``evcharging.events`` into it and says which
parts changed (:class:`Changes`), so the live feed re-renders only those.

Ordering. A snapshot is taken at ``as_of`` (the web server's clock, just before the
request). An event stamped before that is already in the snapshot, so it must not move
a tile back to an older state; events of one CP arrive in order (they share a
partition), so applying the rest in order ends in Central's state.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.events import Event, EventType
from web_ui.feed import FeedItem, feed_item

__all__ = [
    "FEED_SIZE",
    "PANELS",
    "STATE_LABELS",
    "TICKETS_SIZE",
    "Board",
    "Changes",
    "LiveSession",
    "Tile",
    "WeatherView",
]

FEED_SIZE = 30
TICKETS_SIZE = 10

# What a person reads next to (never instead of) the colour.
STATE_LABELS = {
    "ACTIVATED": "Available",
    "SUPPLYING": "Supplying",
    "STOPPED": "Out of Order",
    "BROKEN": "Broken",
    "DISCONNECTED": "Disconnected",
}

# The board's parts besides the tiles; each is re-rendered as a whole.
PANELS = ("summary", "drivers", "sessions", "weather", "feed", "tickets")

# How Central words a weather stop in cp.state_changed (central/weather.py).
_WEATHER_STOP = "weather alert in "
# Central sends these only for CPs it knows: one we lack means our snapshot is behind.
_KNOWN_CP_ONLY = {
    EventType.CP_STATE_CHANGED,
    EventType.CP_AUTHENTICATED,
    EventType.CP_PRICE_CHANGED,
    EventType.SESSION_AUTHORIZED,
    EventType.SESSION_STARTED,
    EventType.SESSION_PROGRESS,
}


@dataclass
class LiveSession:
    """A charge in progress (authorised, or supplying) on one CP."""

    session_id: str
    driver_id: str | None
    status: str = "authorized"
    kw: float = 0.0
    kwh: float = 0.0
    eur: float = 0.0
    price_eur_kwh: float | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> LiveSession:
        return cls(
            # API_Central's public view of a charge point names no session (docs/security.md).
            session_id=str(data.get("session_id") or ""),
            driver_id=data.get("driver_id"),
            status=str(data.get("status") or "authorized"),
            kw=float(data.get("kw") or 0.0),
            kwh=float(data.get("kwh") or 0.0),
            eur=float(data.get("eur") or 0.0),
            price_eur_kwh=_float_or_none(data.get("price_eur_kwh")),
        )


@dataclass
class Tile:
    """One charge point as the board shows it."""

    id: str
    location: str
    price_eur_kwh: float
    state: str = "DISCONNECTED"
    registered: bool = True
    key_status: str = "none"
    engine_ok: bool = True
    monitor_connected: bool = False
    stopped_by: list[str] = field(default_factory=list)
    fault: str | None = None
    reason: str | None = None  # why it is in this state, when known
    session: LiveSession | None = None
    as_of: datetime | None = None  # events stamped before this are already included

    @property
    def label(self) -> str:
        return STATE_LABELS.get(self.state, self.state.title())

    @classmethod
    def of(cls, data: Mapping[str, Any], as_of: datetime | None) -> Tile:
        session = data.get("session")
        return cls(
            id=str(data["id"]),
            location=str(data.get("location") or ""),
            price_eur_kwh=float(data.get("price_eur_kwh") or 0.0),
            state=str(data.get("state") or "DISCONNECTED"),
            registered=bool(data.get("registered", True)),
            key_status=str(data.get("key_status") or "none"),
            engine_ok=bool(data.get("engine_ok", True)),
            monitor_connected=bool(data.get("monitor_connected", False)),
            stopped_by=list(data.get("stopped_by") or []),
            fault=data.get("fault"),
            session=LiveSession.of(session) if session else None,
            as_of=as_of,
        )


@dataclass
class WeatherView:
    location: str
    temperature_c: float | None = None
    status: str = "UNKNOWN"
    alert: bool = False


@dataclass(frozen=True)
class Changes:
    """Which parts of the board an update touched."""

    tiles: frozenset[str] = frozenset()
    panels: frozenset[str] = frozenset()
    tickets: tuple[dict[str, Any], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.tiles or self.panels or self.tickets)

    def __or__(self, other: Changes) -> Changes:
        return Changes(
            self.tiles | other.tiles, self.panels | other.panels, self.tickets + other.tickets
        )


def _float_or_none(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


class Board:
    """Every tile, connected drivers, weather, recent errors and alerts, recent tickets."""

    def __init__(self) -> None:
        self.tiles: dict[str, Tile] = {}
        self.drivers: set[str] = set()
        self.weather: dict[str, WeatherView] = {}
        self.feed: deque[FeedItem] = deque(maxlen=FEED_SIZE)
        self.tickets: deque[dict[str, Any]] = deque(maxlen=TICKETS_SIZE)
        self.as_of: datetime | None = None
        self.missing: set[str] = set()  # CPs that events name but the snapshot lacked

    # ----------------------------------------------------------------- building
    @classmethod
    def from_snapshot(
        cls,
        chargepoints: Iterable[Mapping[str, Any]],
        drivers: Iterable[Mapping[str, Any]],
        weather: Mapping[str, Any],
        tickets: Iterable[Mapping[str, Any]],
        as_of: datetime,
        feed: Iterable[FeedItem] = (),
    ) -> Board:
        """A board from ``GET /api/chargepoints``, ``/drivers``, ``/weather``, ``/sessions``.

        Args:
            chargepoints: the ``chargepoints`` list.
            drivers: the ``drivers`` list (only ``id`` and ``connected`` are read).
            weather: ``{"alerts": [...], "readings": {location: {...}}}``.
            tickets: finished sessions, newest first.
            as_of: when the snapshot was requested.
            feed: recent errors and alerts, newest first (kept across snapshots).
        """
        board = cls()
        board.as_of = as_of
        for data in chargepoints:
            tile = Tile.of(data, as_of)
            board.tiles[tile.id] = tile
        board.drivers = {str(d["id"]) for d in drivers if d.get("connected")}
        alerts = set(weather.get("alerts") or [])
        for location, reading in (weather.get("readings") or {}).items():
            board.weather[location] = WeatherView(
                location,
                _float_or_none(reading.get("temperature_c")),
                str(reading.get("status") or "UNKNOWN"),
                location in alerts,
            )
        for location in alerts - board.weather.keys():
            board.weather[location] = WeatherView(location, alert=True)
        for ticket in list(tickets)[:TICKETS_SIZE][::-1]:
            board.tickets.appendleft(dict(ticket))
        board.feed.extend(feed)
        return board

    def copy(self) -> Board:
        return copy.deepcopy(self)

    # ----------------------------------------------------------------- reading
    def visible_tiles(self) -> list[Tile]:
        """Registered CPs, by id: what the public board shows."""
        return [t for t in sorted(self.tiles.values(), key=lambda t: t.id) if t.registered]

    def sessions(self) -> list[Tile]:
        """Tiles with a charge in progress, by CP id."""
        return [t for t in self.visible_tiles() if t.session is not None]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATE_LABELS, 0)
        for tile in self.tiles.values():
            if tile.registered:
                out[tile.state] = out.get(tile.state, 0) + 1
        return out

    def weather_at(self, location: str) -> WeatherView | None:
        return self.weather.get(location)

    # ----------------------------------------------------------------- events
    def apply(self, event: Event) -> Changes:
        """Fold ``event`` into the board; returns what changed (falsy: nothing)."""
        changes = self._apply(event)
        item = feed_item(event)
        if item is not None and all(i.key != item.key for i in self.feed):
            self.feed.appendleft(item)
            changes = changes | Changes(panels=frozenset({"feed"}))
        return changes

    def _apply(self, event: Event) -> Changes:
        kind, data = event.type, event.data
        if kind is EventType.SESSION_ENDED:
            return self._ticket(event)
        if kind in (EventType.WEATHER_READING, EventType.WEATHER_ALERT, EventType.WEATHER_CLEARED):
            return self._weather(event)
        if kind is EventType.DRIVER_AUTHENTICATED and event.driver_id:
            if event.driver_id in self.drivers:
                return Changes()
            self.drivers.add(event.driver_id)
            return Changes(panels=frozenset({"drivers"}))
        if kind is EventType.CP_REGISTERED and event.cp_id:
            return self._registered(event)
        tile = self.tiles.get(event.cp_id or "")
        if tile is None:
            if event.cp_id and kind in _KNOWN_CP_ONLY:
                self.missing.add(event.cp_id)
            return Changes()
        if tile.as_of is not None and event.ts < tile.as_of:
            return Changes()
        if kind is EventType.CP_STATE_CHANGED:
            return self._state(tile, str(data.get("to") or tile.state), data.get("reason"))
        if kind is EventType.SESSION_AUTHORIZED and event.session_id:
            tile.session = LiveSession(
                event.session_id,
                event.driver_id,
                "authorized",
                price_eur_kwh=_float_or_none(data.get("price_eur_kwh")),
            )
            return _touched(tile, "sessions")
        if kind is EventType.SESSION_STARTED and event.session_id:
            if tile.session is None or tile.session.session_id != event.session_id:
                tile.session = LiveSession(event.session_id, event.driver_id)
            tile.session.status = "supplying"
            return _touched(tile, "sessions")
        if kind is EventType.SESSION_PROGRESS and event.session_id:
            if not data.get("session_id"):
                return Changes()
            tile.session = LiveSession.of({**data, "status": "supplying"})
            return _touched(tile, "sessions")
        if kind is EventType.CP_PRICE_CHANGED:
            price = _float_or_none(data.get("to"))
            if price is None:
                return Changes()
            tile.price_eur_kwh = price
            return _touched(tile)
        if kind is EventType.CP_KEY_REVOKED:
            tile.key_status = "revoked"
            tile.monitor_connected = False
            return _touched(tile)
        if kind is EventType.CP_AUTHENTICATED:
            tile.key_status = "active"
            tile.monitor_connected = True
            return _touched(tile)
        if kind is EventType.CP_DEREGISTERED:
            tile.registered = False
            tile.session = None
            return _touched(tile, "summary", "sessions")
        return Changes()

    def _state(self, tile: Tile, to: str, reason: Any) -> Changes:
        was = tile.state
        tile.state = to
        tile.reason = str(reason) if reason else None
        panels = {"summary"}
        if to == "BROKEN":
            tile.engine_ok = False
            tile.fault = tile.reason
        elif to in ("ACTIVATED", "SUPPLYING"):
            tile.engine_ok, tile.fault = True, None
        if to == "DISCONNECTED":
            tile.monitor_connected = False
        elif to != "STOPPED":
            tile.monitor_connected = True
        ended = to in ("STOPPED", "BROKEN", "DISCONNECTED") or (
            was == "SUPPLYING" and to != "SUPPLYING"
        )
        if ended and tile.session is not None:
            tile.session = None  # the supply is over (or cancelled); a ticket may follow
            panels.add("sessions")
        if to != "STOPPED":
            tile.stopped_by = []
        elif (tile.reason or "").startswith(_WEATHER_STOP):
            # Snapshots say why in stopped_by; an event says it in its reason.
            tile.stopped_by = sorted({*tile.stopped_by, "weather"})
        return Changes(tiles=frozenset({tile.id}), panels=frozenset(panels))

    def _ticket(self, event: Event) -> Changes:
        ticket = dict(event.data)
        session_id = str(ticket.get("session_id") or event.session_id or "")
        panels: set[str] = set()
        tiles: set[str] = set()
        tile = self.tiles.get(event.cp_id or "")
        if tile is not None and tile.session is not None and tile.session.session_id == session_id:
            tile.session = None
            tiles.add(tile.id)
            panels.add("sessions")
        if any(t.get("session_id") == session_id for t in self.tickets):
            return Changes(frozenset(tiles), frozenset(panels))
        self.tickets.appendleft(ticket)
        panels.add("tickets")
        return Changes(frozenset(tiles), frozenset(panels), (ticket,))

    def _weather(self, event: Event) -> Changes:
        location = event.data.get("location")
        if not isinstance(location, str) or not location:
            return Changes()
        view = self.weather.setdefault(location, WeatherView(location))
        before = copy.copy(view)
        if event.type is EventType.WEATHER_READING:
            view.temperature_c = _float_or_none(event.data.get("temperature_c"))
            view.status = str(event.data.get("status") or "UNKNOWN")
        elif event.type is EventType.WEATHER_ALERT:
            view.alert = True
            temperature = _float_or_none(event.data.get("temperature_c"))
            if temperature is not None:
                view.temperature_c = temperature
        else:
            view.alert = False
        if view == before:
            return Changes()
        here = frozenset(t.id for t in self.tiles.values() if t.location == location)
        return Changes(tiles=here, panels=frozenset({"weather"}))

    def _registered(self, event: Event) -> Changes:
        assert event.cp_id is not None
        data = event.data
        tile = self.tiles.get(event.cp_id)
        if tile is None:
            tile = self.tiles[event.cp_id] = Tile(
                event.cp_id,
                str(data.get("location") or ""),
                _float_or_none(data.get("price_eur_kwh")) or 0.0,
            )
        else:
            tile.registered = True
            if data.get("location"):
                tile.location = str(data["location"])
            price = _float_or_none(data.get("price_eur_kwh"))
            if price is not None:
                tile.price_eur_kwh = price
        return _touched(tile, "summary")

    # ----------------------------------------------------------------- resync
    def keep_reasons(self, old: Board) -> None:
        """Keep why a tile is in its state (events say it, snapshots do not)."""
        for tile in self.tiles.values():
            before = old.tiles.get(tile.id)
            if before is not None and before.state == tile.state and tile.reason is None:
                tile.reason = before.reason

    def changes_since(self, old: Board) -> Changes:
        """What differs between ``old`` and this board (a fresh snapshot)."""
        tiles = {
            cp_id
            for cp_id in self.tiles.keys() | old.tiles.keys()
            if _shown(self.tiles.get(cp_id)) != _shown(old.tiles.get(cp_id))
        }
        panels = set()
        if tiles:
            panels.update({"summary", "sessions"})
        if self.drivers != old.drivers:
            panels.add("drivers")
        if self.weather != old.weather:
            panels.add("weather")
            tiles.update(t.id for t in self.tiles.values())
        if list(self.tickets) != list(old.tickets):
            panels.add("tickets")
        if list(self.feed) != list(old.feed):
            panels.add("feed")
        return Changes(frozenset(tiles), frozenset(panels))


_NOT_SHOWN = {"as_of", "monitor_connected", "engine_ok"}


def _shown(tile: Tile | None) -> Any:
    """What a tile shows, for comparing (the rest is bookkeeping)."""
    if tile is None:
        return None
    return {k: v for k, v in vars(tile).items() if k not in _NOT_SHOWN}


def _touched(tile: Tile, *panels: str) -> Changes:
    return Changes(tiles=frozenset({tile.id}), panels=frozenset(panels))
