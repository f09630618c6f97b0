"""Where the map draws each location: a table of known cities, a fallback for the rest.

No I/O here, and nothing fetched at run time (no tile server: the board must work
without the internet, and the page's Content-Security-Policy loads nothing from
elsewhere). Locations are free text typed when a CP is registered, so the map cannot
know every one: the cities below (the demo's five and the other large cities of the
Iberian peninsula) are placed by latitude and longitude over a coarse outline of the
peninsula; any other location goes in a row of its own under the outline, in name
order, so that it still shows with its counts and still links to its CPs.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from web_ui.fleet import LocationSummary

__all__ = ["CITIES", "MapLayout", "Marker", "layout"]

# (latitude, longitude), WGS84, rounded: a city's centre is precise enough for a map of
# a country. Keys are folded (no accents, lower case): "Sevilla", "sevilla", "Sevílla".
CITIES: dict[str, tuple[float, float]] = {
    "madrid": (40.42, -3.70),
    "barcelona": (41.39, 2.17),
    "valencia": (39.47, -0.38),
    "sevilla": (37.39, -5.98),
    "seville": (37.39, -5.98),
    "bilbao": (43.26, -2.93),
    "zaragoza": (41.65, -0.89),
    "malaga": (36.72, -4.42),
    "murcia": (37.99, -1.13),
    "alicante": (38.35, -0.48),
    "valladolid": (41.65, -4.72),
    "vigo": (42.24, -8.72),
    "a coruna": (43.36, -8.41),
    "gijon": (43.54, -5.66),
    "oviedo": (43.36, -5.85),
    "santander": (43.46, -3.81),
    "san sebastian": (43.32, -1.98),
    "donostia": (43.32, -1.98),
    "pamplona": (42.81, -1.64),
    "vitoria": (42.85, -2.67),
    "granada": (37.18, -3.60),
    "cordoba": (37.89, -4.78),
    "cadiz": (36.53, -6.29),
    "almeria": (36.84, -2.46),
    "salamanca": (40.97, -5.66),
    "toledo": (39.86, -4.02),
    "badajoz": (38.88, -6.97),
    "caceres": (39.47, -6.37),
    "tarragona": (41.12, 1.25),
    "girona": (41.98, 2.82),
    "lleida": (41.62, 0.62),
    "castellon": (39.99, -0.05),
    "burgos": (42.34, -3.70),
    "leon": (42.60, -5.57),
    "huelva": (37.26, -6.95),
    "jaen": (37.77, -3.79),
    "albacete": (38.99, -1.86),
    "lisboa": (38.72, -9.14),
    "lisbon": (38.72, -9.14),
    "porto": (41.15, -8.61),
}

# A coarse outline of the Iberian peninsula, (latitude, longitude), clockwise from Galicia.
_OUTLINE: tuple[tuple[float, float], ...] = (
    (43.30, -8.90),
    (43.75, -7.70),
    (43.58, -5.80),
    (43.45, -3.80),
    (43.38, -1.80),
    (43.05, -1.40),
    (42.75, 0.70),
    (42.45, 3.20),
    (41.90, 3.20),
    (41.35, 2.20),
    (41.00, 0.90),
    (40.55, 0.55),
    (39.50, -0.30),
    (38.75, 0.20),
    (38.30, -0.50),
    (37.60, -0.75),
    (36.75, -1.90),
    (36.70, -2.50),
    (36.70, -4.40),
    (36.10, -5.35),
    (36.50, -6.30),
    (37.20, -7.40),
    (37.00, -8.90),
    (38.00, -8.80),
    (38.75, -9.50),
    (39.50, -8.90),
    (41.15, -8.65),
    (41.87, -8.87),
    (42.90, -9.30),
)
_NORTH, _SOUTH, _WEST, _EAST = 44.2, 35.6, -9.9, 3.9
_SCALE = 60.0  # SVG units per degree of latitude
_MID_LAT = math.radians((_NORTH + _SOUTH) / 2)
WIDTH = round((_EAST - _WEST) * _SCALE * math.cos(_MID_LAT))
LAND_HEIGHT = round((_NORTH - _SOUTH) * _SCALE)
ROW_HEIGHT = 70  # each row of locations the table does not know
PER_ROW = 4


@dataclass(frozen=True)
class Marker:
    """One location on the map: where, how big, and the bar of its states."""

    place: LocationSummary
    x: float
    y: float
    r: float
    known: bool  # placed by coordinates (False: in the row under the outline)
    segments: tuple[tuple[str, float, float], ...]  # (state, x offset, width) of its bar


@dataclass(frozen=True)
class MapLayout:
    width: int
    height: int
    land_height: int
    outline: str  # SVG points
    markers: tuple[Marker, ...]
    others_y: float | None  # the heading of the row of unplaced locations, if any


def _fold(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(plain.casefold().replace("-", " ").split())


def _project(lat: float, lon: float) -> tuple[float, float]:
    x = (lon - _WEST) * _SCALE * math.cos(_MID_LAT)
    y = (_NORTH - lat) * _SCALE
    return round(x, 1), round(y, 1)


BAR_WIDTH = 56.0


def _segments(place: LocationSummary) -> tuple[tuple[str, float, float], ...]:
    if not place.total:
        return ()
    out, x = [], 0.0
    for state, count in place.counts.items():
        if count:
            width = BAR_WIDTH * count / place.total
            out.append((state, round(x, 2), round(width, 2)))
            x += width
    return tuple(out)


def layout(places: Sequence[LocationSummary]) -> MapLayout:
    """Markers for ``places``: known cities by position, the rest in rows underneath."""
    biggest = max((p.total for p in places), default=0) or 1
    markers: list[Marker] = []
    unknown: list[LocationSummary] = []
    for place in places:
        where = CITIES.get(_fold(place.location))
        if where is None:
            unknown.append(place)
            continue
        x, y = _project(*where)
        markers.append(Marker(place, x, y, _radius(place.total, biggest), True, _segments(place)))
    rows = -(-len(unknown) // PER_ROW)
    step = WIDTH / PER_ROW
    for i, place in enumerate(unknown):
        row, col = divmod(i, PER_ROW)
        x = round(step * (col + 0.5), 1)
        y = LAND_HEIGHT + 62 + row * ROW_HEIGHT
        markers.append(Marker(place, x, y, _radius(place.total, biggest), False, _segments(place)))
    outline = " ".join(f"{x},{y}" for x, y in (_project(*p) for p in _OUTLINE))
    height = LAND_HEIGHT + (40 + rows * ROW_HEIGHT if rows else 0)
    return MapLayout(
        WIDTH, height, LAND_HEIGHT, outline, tuple(markers), LAND_HEIGHT + 18 if rows else None
    )


def _radius(total: int, biggest: int) -> float:
    """Area grows with the number of CPs; a location with one CP stays visible."""
    return round(5 + 13 * math.sqrt(total / biggest), 1)
