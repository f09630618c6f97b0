"""HTML fragments for the live feed, from the same templates the pages include."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask

from web_ui.fleet import Page, summarise
from web_ui.geo import layout
from web_ui.view import Board

__all__ = ["JinjaRenderer", "install_filters"]


class JinjaRenderer:
    """Renders tiles and panels outside a request (fragments use no request context)."""

    def __init__(self, app: Flask) -> None:
        self._env = app.jinja_env

    def tile(self, board: Board, cp_id: str) -> str:
        tile = board.tiles.get(cp_id)
        if tile is None or not tile.registered:
            return ""
        template = self._env.get_template("_tile.html")
        return template.render(tile=tile, weather=board.weather_at(tile.location))

    def panel(self, board: Board, name: str) -> str:
        template = self._env.get_template(f"_panel_{name}.html")
        if name in ("summary", "map"):
            summary = summarise(board)
            return template.render(board=board, summary=summary, geo=layout(summary.locations))
        return template.render(board=board)

    def listing(self, board: Board, page: Page) -> str:
        return self._env.get_template("_list.html").render(board=board, page=page)


def _eur(value: Any) -> str:
    return f"{float(value or 0):,.2f} €"


def _kwh(value: Any, places: int = 2) -> str:
    return f"{float(value or 0):,.{places}f} kWh"


def _price(value: Any) -> str:
    """0.4 -> "0.40", 0.3456 -> "0.3456": cents always, more places only when set."""
    text = f"{float(value or 0):.4f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def _when(value: Any) -> str:
    """An ISO time (or datetime) as ``2026-11-21 10:00:03 UTC``."""
    if not value:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def _temperature(value: Any) -> str:
    return "—" if value is None else f"{float(value):.1f} °C"


def install_filters(app: Flask) -> None:
    app.jinja_env.filters.update(
        eur=_eur, kwh=_kwh, price=_price, when=_when, temperature=_temperature
    )
