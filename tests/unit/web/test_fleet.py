"""The board at fleet scale: views from the query string, pages, the summary, the map, CSV."""

from __future__ import annotations

import csv
import io
from typing import cast

from flask.testing import FlaskClient
from werkzeug.datastructures import MultiDict

from common.events import EventType
from tests.unit.web.fakes import T0, FakeCentral, cp, event
from web_ui.app import create_app
from web_ui.central_client import CentralClient
from web_ui.charts import top_n
from web_ui.deps import Clients
from web_ui.fleet import DEFAULT_SIZE, Query, select, summarise
from web_ui.geo import CITIES, LAND_HEIGHT, layout
from web_ui.live import LiveBoard
from web_ui.settings import WebSettings
from web_ui.view import Board

STATES = ("ACTIVATED", "SUPPLYING", "STOPPED", "BROKEN", "DISCONNECTED")


def fleet(n: int = 100) -> Board:
    places = ("Madrid", "Sevilla", "Nowhere")
    cps = [cp(f"CP{i:03d}", STATES[i % 5], location=places[i % 3]) for i in range(n)]
    weather = {"alerts": ["Sevilla"], "readings": {}}
    return Board.from_snapshot(cps, [], weather, [], T0)


def test_a_view_is_read_from_the_query_string_and_written_back_canonical() -> None:
    args = MultiDict([("state", "broken"), ("state", "STOPPED,"), ("location", "Madrid")])
    args.update({"q": "cp0", "sort": "-state", "page": "2", "size": "24", "why": "weather"})
    query = Query.parse(args)
    assert query.states == {"BROKEN", "STOPPED"} and query.location == "Madrid"
    assert (query.q, query.sort, query.page, query.size, query.weather) == (
        "cp0",
        "-state",
        2,
        24,
        True,
    )
    assert query.errors == ()
    assert query.url() == (
        "?state=STOPPED%2CBROKEN&location=Madrid&q=cp0&why=weather&sort=-state&page=2&size=24"
    )
    assert Query().url() == "?" and Query().url(page=3) == "?page=3"


def test_a_bad_view_is_refused_piece_by_piece_with_reasons() -> None:
    query = Query.parse({"state": "ON_FIRE", "sort": "price", "page": "x", "size": "99999"})
    assert query == Query(size=1000)
    assert len(query.errors) == 4
    assert "Unknown state 'ON_FIRE'." in query.errors
    assert Query.parse({"q": "x" * 65}).q == "" and Query.parse({"q": "a\x00"}).errors


def test_select_returns_one_page_of_the_matching_cps_in_order() -> None:
    board = fleet(100)
    first = select(board, Query())
    assert first.total == 100 and len(first.ids) == DEFAULT_SIZE and first.ids[0] == "CP000"
    assert (first.pages, first.first, first.last) == (3, 1, 48)
    last = select(board, Query(page=99))  # past the end: the last page
    assert last.page == 3 and last.ids == ("CP096", "CP097", "CP098", "CP099")
    broken = select(board, Query(states=frozenset({"BROKEN"}), location="Madrid"))
    assert all(board.tiles[i].state == "BROKEN" for i in broken.ids)
    assert all(board.tiles[i].location == "Madrid" for i in broken.ids) and broken.total == 7
    assert select(board, Query(q="cp00")).ids == tuple(f"CP00{i}" for i in range(10))
    by_state = select(board, Query(sort="state", size=1000))
    assert [board.tiles[i].state for i in by_state.ids[:1]] == ["BROKEN"]
    assert by_state.ids[-1] == "CP095"  # available last, by id
    assert select(board, Query(sort="-id")).ids[0] == "CP099"
    nothing = select(board, Query(q="zzz"))
    assert (nothing.total, nothing.ids, nothing.first, nothing.last) == (0, (), 0, 0)


def test_weather_stopped_cps_are_found_from_snapshots_and_from_events() -> None:
    board = Board.from_snapshot(
        [cp("CP1", "STOPPED", stopped_by=["weather"]), cp("CP2"), cp("CP3", "STOPPED")],
        [],
        {},
        [],
        T0,
    )
    data = {"to": "STOPPED", "reason": "weather alert in Madrid"}
    board.apply(event(EventType.CP_STATE_CHANGED, cp_id="CP2", data=data, at=1))
    assert select(board, Query(weather=True)).ids == ("CP1", "CP2")
    board.apply(event(EventType.CP_STATE_CHANGED, cp_id="CP2", data={"to": "ACTIVATED"}, at=2))
    assert select(board, Query(weather=True)).ids == ("CP1",)
    # Back to STOPPED for another reason while an alert is in force where it stands.
    board.apply(event(EventType.WEATHER_ALERT, data={"location": "Madrid"}, at=3))
    board.apply(event(EventType.CP_STATE_CHANGED, cp_id="CP2", data={"to": "STOPPED"}, at=4))
    assert select(board, Query(weather=True)).ids == ("CP1", "CP2", "CP3")
    assert summarise(board).weather_stopped == 3


def test_the_summary_counts_every_state_and_place_and_names_the_alerts() -> None:
    board = fleet(100)
    board.tiles["CP000"].registered = False  # deregistered: not counted anywhere
    summary = summarise(board)
    assert summary.total == 99 and sum(summary.counts.values()) == 99
    assert summary.counts == board.counts()
    assert [p.location for p in summary.locations] == ["Madrid", "Nowhere", "Sevilla"]
    assert sum(p.total for p in summary.locations) == 99
    assert summary.alerts == ("Sevilla",)
    sevilla = summary.locations[2]
    assert sevilla.alert and sevilla.attention == sum(
        sevilla.counts[s] for s in ("BROKEN", "DISCONNECTED", "STOPPED")
    )


def test_the_map_places_known_cities_and_lines_up_the_others() -> None:
    summary = summarise(fleet(30))
    geo = layout(summary.locations)
    spots = {m.place.location: m for m in geo.markers}
    assert spots["Madrid"].known and spots["Sevilla"].known and not spots["Nowhere"].known
    # Sevilla is south-west of Madrid; the unknown place sits under the outline.
    assert spots["Sevilla"].x < spots["Madrid"].x and spots["Sevilla"].y > spots["Madrid"].y
    assert spots["Nowhere"].y > LAND_HEIGHT and geo.others_y is not None
    assert all(0 <= m.x <= geo.width and 0 <= m.y <= geo.height for m in geo.markers)
    widths = sum(w for _, _, w in spots["Madrid"].segments)
    assert abs(widths - 56.0) < 0.1  # the bar of states adds up to its full width
    assert "sevilla" in CITIES and layout([]).markers == ()


def test_top_n_keeps_the_largest_and_sums_the_rest() -> None:
    points = [(f"CP{i}", float(i)) for i in range(100)]
    top = top_n(points, 3)
    assert top == [("CP99", 99.0), ("CP98", 98.0), ("CP97", 97.0), ("the 97 others", 4656.0)]
    assert sum(v for _, v in top) == sum(v for _, v in points)
    assert top_n(points[:4], 3) == sorted(points[:4], key=lambda p: -p[1])  # no "1 other"


def _client(central: FakeCentral) -> FlaskClient:
    live = LiveBoard(cast(CentralClient, central))
    app = create_app(WebSettings(secret_key="k" * 32), Clients(cast(CentralClient, central), live))
    live.resync()
    return app.test_client()


def test_the_board_page_shows_only_its_view_and_says_what_was_wrong() -> None:
    central = FakeCentral([cp(f"CP{i:03d}", STATES[i % 5]) for i in range(120)])
    client = _client(central)
    html = client.get("/?state=BROKEN&size=24").get_data(as_text=True)
    assert html.count('class="tile ') == 24 and 'data-state="ACTIVATED"' not in html
    assert "Showing 1\u201324 of 24 charge points matching the filters" in html
    assert 'data-count="BROKEN">24<' in html  # the summary counts the whole network
    html = client.get("/").get_data(as_text=True)
    assert html.count('class="tile ') == DEFAULT_SIZE and "Page 1 of 3" in html
    assert 'href="?page=2"' in html
    html = client.get("/?state=nope").get_data(as_text=True)
    assert "Unknown state &#39;NOPE&#39;." in html and html.count('class="tile ') == DEFAULT_SIZE


def test_revenue_breaks_down_per_location_and_exports_each_breakdown_as_csv() -> None:
    central = FakeCentral([cp("CP1"), cp("CP2", location="Bilbao"), cp("CP3", location="Bilbao")])
    central.stats_view.update(
        per_cp=[
            {"cp_id": "CP1", "sessions": 1, "kwh": 10.0, "eur": 4.0},
            {"cp_id": "CP2", "sessions": 2, "kwh": 5.0, "eur": 2.5},
            {"cp_id": "CP3", "sessions": 1, "kwh": 1.0, "eur": 0.5},
            {"cp_id": "GONE", "sessions": 1, "kwh": 1.0, "eur": 1.0},
        ],
        per_day=[{"day": "2026-11-20", "sessions": 5, "kwh": 17.0, "eur": 8.0}],
    )
    client = _client(central)
    html = client.get("/revenue").get_data(as_text=True)
    assert "Revenue per location (top 10)" in html and "Bilbao: 3.00 €" in html
    assert "Energy per charge point (top 10)" in html and "CP2: 5.0 kWh" in html
    response = client.get("/revenue.csv?by=location")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "revenue-by-location-" in response.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows == [
        ["location", "sessions", "energy_kwh", "revenue_eur"],
        ["(unknown)", "1", "1.000", "1.00"],
        ["Bilbao", "3", "6.000", "3.00"],
        ["Madrid", "1", "10.000", "4.00"],
    ]
    rows = list(csv.reader(io.StringIO(client.get("/revenue.csv?by=cp").get_data(as_text=True))))
    assert rows[0][0] == "cp_id" and len(rows) == 5
    day = client.get("/revenue.csv").get_data(as_text=True)
    assert day.splitlines()[1] == "2026-11-20,5,17.000,8.00"
    refused = client.get("/revenue.csv?by=driver")
    assert refused.status_code == 400 and "by= is one of" in refused.get_data(as_text=True)
