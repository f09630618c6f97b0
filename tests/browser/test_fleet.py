"""The board at fleet scale, in a real browser, against the real system (130 CPs).

The same code paths as 10,000 CPs (bench/board.py measures that): views in the URL,
pages, the summary against API_Central, the map, CSV export, the filters by keyboard, a
phone, and a page that falls behind. Screenshots go to ``test-artifacts/web/``.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from central.drivers import add_driver
from common.db import open_database
from common.db.models import ChargePoint, Credential, PrincipalKind
from common.infra import EmbeddedBroker
from common.protocol.keys import make_verifier, new_secret
from common.protocol.messages import MessageType
from common.tcp import free_port
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.broker import wait_until
from tests.support.central import CentralProcess, ScriptedCP, driver
from tests.support.scrypt import CHEAP_SCRYPT
from tests.support.web import LoopThread, WebProcess, start_central_with_events, start_web

pytestmark = pytest.mark.integration

PLACES = ("Madrid", "Barcelona", "Valencia", "Sevilla", "Bilbao", "Teruel")  # Teruel: no position
COUNT = 130
STATES = ("ACTIVATED", "SUPPLYING", "STOPPED", "BROKEN", "DISCONNECTED")


def cp_id(i: int) -> str:
    return f"F{i:03d}"


@dataclass
class Fleet:
    central: CentralProcess
    web: WebProcess
    loop: LoopThread
    secrets: dict[str, str]
    driver_secret: str
    cps: dict[str, ScriptedCP] = field(default_factory=dict)

    def url(self, path: str = "/") -> str:
        return f"{self.web.url}{path}"

    def connect(self, cp: str) -> ScriptedCP:
        link = ScriptedCP(cp, self.secrets[cp], self.central.addr)
        self.loop.run(link.connect())
        self.cps[cp] = link
        return link

    def counts(self) -> dict[str, int]:
        """API_Central's counts per state."""
        return dict(self.central.get("/stats").json()["by_state"])


def seed(db_url: str) -> dict[str, str]:
    """COUNT registered CPs over PLACES in one transaction; their secrets."""
    out = {}
    db = open_database(db_url)
    with db.transaction() as session:
        for i in range(COUNT):
            out[cp_id(i)] = secret = new_secret()
            where = PLACES[i % len(PLACES)]
            session.add(ChargePoint(id=cp_id(i), location=where, price_eur_kwh=Decimal("0.40")))
            verifier = make_verifier(secret, CHEAP_SCRYPT)
            session.add(Credential.of(PrincipalKind.CP, cp_id(i), verifier))
    db.dispose()
    return out


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, broker: EmbeddedBroker) -> Iterator[Fleet]:
    tmp = tmp_path_factory.mktemp("fleet")
    db_url = f"sqlite:///{tmp / 'evcharging.db'}"
    secrets = seed(db_url)
    driver_secret = add_driver(db_url, "FD1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)
    central = start_central_with_events(tmp, db_url, free_port(), free_port(), broker.bootstrap)
    known = lambda: len(central.get("/chargepoints").json()["chargepoints"])  # noqa: E731
    wait_until(lambda: known() == COUNT, 20, "Central to load the charge points")
    web = start_web(tmp, central.api, free_port(), central.token, bootstrap=broker.bootstrap)
    system = Fleet(central, web, LoopThread(), secrets, driver_secret)
    try:
        # Something in every state: F000 Madrid available, F001 Barcelona broken, F003
        # Sevilla stopped by a weather alert, F004 Bilbao stopped by the operator.
        for i in (0, 1, 3, 4, 6):
            system.connect(cp_id(i))
        monitor = system.cps["F001"].monitor
        assert monitor is not None
        system.cps["F001"].engine_ok = False
        system.loop.call(monitor.send, MessageType.ENGINE_STATUS, {"ok": False, "reason": "KO"})
        assert central.post("/chargepoints/F004/stop").status_code == 200
        alert = {"location": "Sevilla", "temperature_c": -3.0}
        assert central.post("/weather/alerts", alert).status_code == 201
        wait_until(lambda: central.cp("F003")["state"] == "STOPPED", 10, "the weather stop")
        wait_until(lambda: central.cp("F001")["state"] == "BROKEN", 10, "the fault")
        yield system
    finally:
        for link in system.cps.values():
            system.loop.run(link.close())
        system.loop.close()
        web.proc.stop()
        central.proc.stop()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, accept_downloads=True, reduced_motion="reduce"
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def open_board(page: Any, fleet: Fleet, query: str = "") -> None:
    page.goto(fleet.url("/" + query))
    page.wait_for_selector('#live-indicator[data-state="live"]')
    page.wait_for_selector("body[data-shown]", state="attached")
    page.evaluate("window.__sameDocument = true")


def shown(page: Any, view: str) -> None:
    """Wait until the page shows the view ``view`` (a canonical query string)."""
    page.wait_for_selector(f'body[data-shown="{view}"]', state="attached")


def tiles(page: Any) -> list[tuple[str, str]]:
    return [
        (str(t.get_attribute("data-cp")), str(t.get_attribute("data-state")))
        for t in page.locator("#tiles .tile").all()
    ]


def page_counts(page: Any) -> dict[str, int]:
    out = {}
    for state in STATES:
        text = str(page.text_content(f'[data-panel="summary"] [data-count="{state}"]'))
        out[state] = int(text.replace(",", ""))
    return out


def test_filters_live_in_the_url_and_a_shared_link_opens_the_same_view(
    page: Any, fleet: Fleet, artifacts: Path
) -> None:
    open_board(page, fleet)
    page.get_by_label("Broken", exact=True).check()
    shown(page, "state=BROKEN")
    assert page.url.endswith("/?state=BROKEN")
    assert tiles(page) == [("F001", "BROKEN")]
    assert "Showing 1\u20131 of 1 charge point matching the filters" in str(
        page.text_content("#list-count")
    )
    page.get_by_label("Location", exact=True).select_option("Barcelona")
    shown(page, "state=BROKEN&location=Barcelona")
    page.screenshot(path=str(artifacts / "fleet-filtered.png"), full_page=True)

    shared = page.context.new_page()  # the same link, opened elsewhere
    shared.goto(page.url)
    shared.wait_for_selector('#live-indicator[data-state="live"]')
    assert tiles(shared) == [("F001", "BROKEN")]
    assert shared.get_by_label("Broken", exact=True).is_checked()
    assert shared.get_by_label("Location", exact=True).input_value() == "Barcelona"

    page.go_back()  # Back: the previous view, still without a reload
    shown(page, "state=BROKEN")
    page.go_back()
    shown(page, "")
    assert len(tiles(page)) == 48 and not page.get_by_label("Broken", exact=True).is_checked()
    assert page.evaluate("window.__sameDocument") is True

    page.get_by_role("link", name=re.compile(r"Stopped by weather")).first.click()
    shown(page, "why=weather")
    assert tiles(page) == [("F003", "STOPPED")]
    assert "weather alert" in str(page.text_content("#cp-F003")).lower()


def test_only_one_page_of_rows_is_in_the_document(page: Any, fleet: Fleet) -> None:
    open_board(page, fleet)
    assert [cp for cp, _ in tiles(page)] == [cp_id(i) for i in range(48)]
    assert "Page 1 of 3" in str(page.text_content(".pager"))
    page.get_by_role("link", name="Next \u203a").click()
    shown(page, "page=2")
    assert [cp for cp, _ in tiles(page)] == [cp_id(i) for i in range(48, 96)]
    page.get_by_role("link", name="Last \u00bb").click()
    shown(page, "page=3")
    assert [cp for cp, _ in tiles(page)] == [cp_id(i) for i in range(96, COUNT)]
    assert page.locator(".tile").count() == COUNT - 96  # nothing else hidden in the page
    page.get_by_label("Per page", exact=True).select_option("24")
    shown(page, "size=24")  # a new page size starts again at the first page
    assert len(tiles(page)) == 24
    # Live: a change to a CP on this page replaces its tile in place.
    assert fleet.central.post("/chargepoints/F006/stop").status_code == 200
    page.wait_for_selector('#cp-F006[data-state="STOPPED"]')
    assert fleet.central.post("/chargepoints/F006/resume").status_code == 200
    page.wait_for_selector('#cp-F006[data-state="ACTIVATED"]')


def test_the_summary_counts_equal_api_centrals(page: Any, fleet: Fleet, artifacts: Path) -> None:
    open_board(page, fleet, "?state=DISCONNECTED")  # a filter never narrows the summary
    wait_until(lambda: page_counts(page) == fleet.counts(), 10, "the counts to match")
    counts = fleet.counts()
    assert sum(counts.values()) == COUNT and counts["BROKEN"] >= 1 and counts["STOPPED"] >= 2
    total = str(page.text_content('[data-count="TOTAL"]'))
    assert total == str(COUNT)
    # A change moves the counts on the open page, and they still agree.
    assert fleet.central.post("/chargepoints/F000/stop").status_code == 200
    wait_until(lambda: page_counts(page)["STOPPED"] == counts["STOPPED"] + 1, 10, "the stop")
    assert page_counts(page) == fleet.counts()
    assert fleet.central.post("/chargepoints/F000/resume").status_code == 200
    wait_until(lambda: page_counts(page) == fleet.counts() == counts, 10, "the resume")
    page.locator(".overview").screenshot(path=str(artifacts / "fleet-summary.png"))


def test_the_map_shows_each_location_with_its_counts_and_links_to_its_cps(
    page: Any, fleet: Fleet, artifacts: Path
) -> None:
    open_board(page, fleet)
    markers = page.locator("svg .marker")
    assert sorted(str(m.get_attribute("data-location")) for m in markers.all()) == sorted(PLACES)
    sevilla = page.locator('svg .marker[data-location="Sevilla"]')
    assert "alert" in str(sevilla.get_attribute("class"))  # the cold alert shows
    madrid = page.locator('svg .marker[data-location="Madrid"] circle').bounding_box()
    bilbao = page.locator('svg .marker[data-location="Bilbao"] circle').bounding_box()
    assert bilbao["y"] < madrid["y"]  # north is up
    teruel = page.locator('svg .marker[data-location="Teruel"] circle').bounding_box()
    land = page.locator("svg .land").bounding_box()
    assert teruel["y"] > land["y"] + land["height"]  # no position known: under the outline
    row = page.locator('#locations tr[data-location="Madrid"]')
    assert row.locator("td").first.inner_text() == str(len(range(0, COUNT, len(PLACES))))
    page.locator(".locations").screenshot(path=str(artifacts / "fleet-map.png"))
    page.locator('svg .marker[data-location="Madrid"]').click()
    shown(page, "location=Madrid")
    assert {cp for cp, _ in tiles(page)} == {cp_id(i) for i in range(0, COUNT, len(PLACES))}


def test_revenue_per_location_exports_as_csv(page: Any, fleet: Fleet, artifacts: Path) -> None:
    cp = fleet.cps["F006"]
    drv = fleet.loop.run(driver(fleet.central.addr, "FD1", fleet.driver_secret))
    try:
        fleet.loop.call(drv.send, MessageType.CHARGE_REQUEST, {"cp_id": "F006"})
        session_id = fleet.loop.run(cp.accept_authorization())
        fleet.loop.call(cp.plug, session_id)
        fleet.loop.run(cp.unplug(session_id, 10.0))
    finally:
        fleet.loop.run(drv.close())
    page.goto(fleet.url("/revenue"))
    page.wait_for_selector('#live-indicator[data-state="live"]')
    assert "Madrid: 4.00 €" in str(page.text_content(".charts"))
    page.locator("details.tables summary").click()
    with page.expect_download() as info:
        table = page.locator("#per-location")
        table.get_by_role("link", name=re.compile("Download as CSV")).click()
    download = info.value
    assert re.fullmatch(r"revenue-by-location-\d{8}T\d{6}Z\.csv", download.suggested_filename)
    target = artifacts / download.suggested_filename
    download.save_as(str(target))
    rows = list(csv.reader(io.StringIO(target.read_text())))
    assert rows == [
        ["location", "sessions", "energy_kwh", "revenue_eur"],
        ["Madrid", "1", "10.000", "4.00"],
    ]
    page.screenshot(path=str(artifacts / "fleet-revenue.png"), full_page=True)


def test_the_filters_work_from_the_keyboard(page: Any, fleet: Fleet) -> None:
    open_board(page, fleet)
    for _ in range(40):  # Tab from the top of the page to the first filter
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.name") == "state":
            break
    assert page.evaluate("document.activeElement.value") == "ACTIVATED"
    for _ in range(3):
        page.keyboard.press("Tab")  # Available, Supplying, Out of Order → Broken
    assert page.evaluate("document.activeElement.value") == "BROKEN"
    page.keyboard.press("Space")
    shown(page, "state=BROKEN")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")  # and Out of Order
    shown(page, "state=STOPPED&state=BROKEN")
    assert {cp for cp, _ in tiles(page)} == {"F001", "F003", "F004"}
    while page.evaluate("document.activeElement.name") != "q":
        page.keyboard.press("Tab")
    page.keyboard.type("f00")
    shown(page, "state=STOPPED&state=BROKEN&q=f00")
    page.keyboard.press("Tab")  # to the sort order, changed with the arrow keys
    assert page.evaluate("document.activeElement.name") == "sort"
    page.keyboard.press("ArrowDown")
    shown(page, "state=STOPPED&state=BROKEN&q=f00&sort=state")
    assert [cp for cp, _ in tiles(page)] == ["F001", "F003", "F004"]  # broken first
    focused = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused != "none"  # where the keyboard is can be seen


def test_the_board_is_usable_on_a_phone(page: Any, fleet: Fleet, artifacts: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_board(page, fleet, "?state=BROKEN,STOPPED")
    assert not page.locator("svg .land").is_visible()  # the map folds away; the list is first
    page.get_by_text("Locations", exact=True).click()
    assert page.locator("svg .land").is_visible()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways ({width}px)"
    boxes = [page.locator(f"#cp-{cp}").bounding_box() for cp in ("F001", "F003")]
    assert boxes[0]["x"] == boxes[1]["x"] and boxes[0]["width"] > 300  # one column
    broken = page.get_by_label("Broken", exact=True).bounding_box()
    assert broken["height"] >= 20  # a target a thumb can hit (its label is 44px high)
    page.get_by_label("Broken", exact=True).uncheck()
    shown(page, "state=STOPPED")
    page.screenshot(path=str(artifacts / "fleet-phone.png"), full_page=False)


def test_a_page_that_falls_behind_resynchronises(page: Any, fleet: Fleet) -> None:
    open_board(page, fleet, "?q=F00")
    page.wait_for_selector('#cp-F006[data-state="ACTIVATED"]')
    assert page.evaluate("document.body.dataset.resyncs") is None
    # The page's main thread is busy for 5 s (a slow phone, a sleeping tab) while
    # Central changes a CP it shows; what queued meanwhile is stale when it wakes.
    page.evaluate(
        "setTimeout(() => { const end = Date.now() + 5000; while (Date.now() < end) {} }, 50)"
    )
    time.sleep(0.4)
    assert fleet.central.post("/chargepoints/F006/stop").status_code == 200
    try:
        page.wait_for_selector("body[data-resyncs]", state="attached", timeout=15_000)
        page.wait_for_selector('#cp-F006[data-state="STOPPED"]')
        assert page.evaluate("window.__sameDocument") is True  # resynchronised, not reloaded
        assert page_counts(page) == fleet.counts()
    finally:
        assert fleet.central.post("/chargepoints/F006/resume").status_code == 200
