"""The dashboard in a real browser, with the real system behind it.

Embedded broker, Central (a real process publishing its events), ``ev-web`` (a real
process), scripted charge points and a driver speaking the real protocol. Each test uses
its own charge point, so each can run alone. Screenshots of the board in every state go
to ``test-artifacts/web/``.
"""

from __future__ import annotations

import csv
import io
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from central.drivers import add_driver
from common.client import ClientLink
from common.infra import EmbeddedBroker
from common.procs import ServiceProcess
from common.protocol.messages import MessageType
from common.tcp import free_port
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.broker import wait_until
from tests.support.central import (
    CentralProcess,
    ScriptedCP,
    driver,
    provision_cp,
)
from tests.support.scrypt import CHEAP_SCRYPT, CHEAP_SCRYPT_ENV
from tests.support.web import LoopThread, WebProcess, start_central_with_events, start_web

pytestmark = pytest.mark.integration

# DESIGN.md's state colours, as the stylesheet draws them.
GREEN, DARK_GREEN = "rgb(30, 125, 50)", "rgb(20, 83, 45)"
ORANGE, RED, GREY = "rgb(249, 115, 22)", "rgb(185, 28, 28)", "rgb(75, 85, 99)"
CPS = {
    "CP1": ("Madrid", "0.40"),
    "CP2": ("Bilbao", "0.50"),
    "CP3": ("Sevilla", "0.35"),
    "CP4": ("Valencia", "0.45"),
}


@dataclass
class LiveSystem:
    central: CentralProcess
    registry: ServiceProcess
    web: WebProcess
    loop: LoopThread
    secrets: dict[str, str]
    driver_secret: str
    cps: dict[str, ScriptedCP] = field(default_factory=dict)

    def connect(self, cp_id: str) -> ScriptedCP:
        cp = ScriptedCP(cp_id, self.secrets[cp_id], self.central.addr)
        self.loop.run(cp.connect())
        self.cps[cp_id] = cp
        return cp

    def url(self, path: str = "/") -> str:
        return f"{self.web.url}{path}"


def start_registry(
    tmp: Path, db_url: str, operator_token: str, bootstrap: str
) -> tuple[ServiceProcess, str, Path]:
    """The Registry on a free port, sharing Central's database; its URL and CA file."""
    args = [sys.executable, "-m", "registry", "--listen", "127.0.0.1:0"]
    args += ["--data-dir", str(tmp / "registry"), "--database-url", db_url]
    env = {
        "EV_PROVISIONING_TOKEN": "provisioning-token-for-tests",
        "EV_OPERATOR_TOKEN": operator_token,  # the dashboard registers as the operator
        "EV_KAFKA_BOOTSTRAP": bootstrap,
        **CHEAP_SCRYPT_ENV,
    }
    proc = ServiceProcess(args, env, tmp / "registry.log", "registry").start()
    ready = proc.wait_ready("registry", timeout=60)
    return proc, ready["url"], Path(ready["ca"])


@pytest.fixture(scope="module")
def system(
    tmp_path_factory: pytest.TempPathFactory, broker: EmbeddedBroker
) -> Iterator[LiveSystem]:
    tmp = tmp_path_factory.mktemp("dashboard")
    db_url = f"sqlite:///{tmp / 'evcharging.db'}"
    central = start_central_with_events(tmp, db_url, free_port(), free_port(), broker.bootstrap)
    secrets = {cp_id: provision_cp(db_url, cp_id, *where) for cp_id, where in CPS.items()}
    driver_secret = add_driver(db_url, "D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)
    wait_until(
        lambda: all(central.cp(cp_id)["state"] != "UNKNOWN" for cp_id in CPS),
        10,
        "Central to load the charge points",
    )
    registry, registry_url, ca = start_registry(tmp, db_url, central.token, broker.bootstrap)
    web = start_web(
        tmp,
        central.api,
        free_port(),
        central.token,
        bootstrap=broker.bootstrap,
        extra=["--registry-url", registry_url, "--registry-ca", str(ca)],
    )
    loop = LoopThread()
    live = LiveSystem(central, registry, web, loop, secrets, driver_secret)
    try:
        yield live
    finally:
        for cp in live.cps.values():
            loop.run(cp.close())
        loop.close()
        web.proc.stop()
        registry.stop()
        central.proc.stop()
        for proc in (web.proc, registry, central.proc):
            if proc.returncode not in (0, None):
                print(f"----- {proc.name} -----\n{proc.tail()}")


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900},
        accept_downloads=True,
        reduced_motion="reduce",  # no colour transitions: what is asserted is what is shown
    )
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def open_board(page: Any, system: LiveSystem) -> None:
    page.goto(system.url("/"))
    page.wait_for_selector('#live-indicator[data-state="live"]')
    page.evaluate("window.__sameDocument = true")  # gone if the page ever reloads


def tile_state(page: Any, cp_id: str, state: str, timeout: float = 10_000) -> Any:
    return page.wait_for_selector(f'#cp-{cp_id}[data-state="{state}"]', timeout=timeout)


def text(page: Any, selector: str) -> str:
    """The element's text as written (not as CSS transforms it), spaces collapsed."""
    return " ".join(str(page.text_content(selector)).split())


def background(page: Any, cp_id: str) -> str:
    """The tile's background colour, once it is settled (tiles are replaced when they change).

    A tile swapped out by a live update between finding and reading it has no computed
    style (''), so read again until the element in the page answers.
    """
    colour = "el => getComputedStyle(el).backgroundColor"
    for _ in range(50):
        value = str(page.locator(f"#cp-{cp_id}").evaluate(colour))
        if value:
            return value
        page.wait_for_timeout(100)
    return ""


def login(page: Any, system: LiveSystem) -> None:
    page.goto(system.url("/operator"))
    assert "/operator/login" in page.url
    page.get_by_label("Operator token").fill(system.central.token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/operator$"))


def test_a_charge_makes_the_tile_supply_with_rising_kwh_and_revenue_grows(
    page: Any, system: LiveSystem, artifacts: Path
) -> None:
    open_board(page, system)
    revenue = page.context.new_page()
    revenue.goto(system.url("/revenue"))
    revenue.wait_for_selector('#live-indicator[data-state="live"]')
    before = float(text(revenue, "#total-eur").replace("€", "").replace(",", ""))

    cp = system.connect("CP1")
    tile_state(page, "CP1", "ACTIVATED")
    assert "Available" in text(page, "#cp-CP1")
    assert background(page, "CP1") == GREEN
    page.screenshot(path=str(artifacts / "board-1-activated.png"), full_page=True)

    drv: ClientLink = system.loop.run(driver(system.central.addr, "D1", system.driver_secret))
    try:
        system.loop.call(drv.send, MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
        session_id = system.loop.run(cp.accept_authorization())
        page.wait_for_selector("#cp-CP1 >> text=Reserved for D1")
        system.loop.call(cp.plug, session_id)
        tile_state(page, "CP1", "SUPPLYING")
        assert background(page, "CP1") == DARK_GREEN
        assert text(page, '#cp-CP1 [data-field="driver"]') == "D1"

        seen = []
        for kwh in (0.5, 1.25, 2.5):
            system.loop.call(cp.telemetry, session_id, kwh, 11.0)
            shown = f"{kwh:.3f} kWh"
            page.wait_for_selector(f'#cp-CP1 [data-field="kwh"]:text-is("{shown}")')
            seen.append(text(page, '#cp-CP1 [data-field="kwh"]'))
        assert seen == ["0.500 kWh", "1.250 kWh", "2.500 kWh"]
        assert text(page, '#cp-CP1 [data-field="eur"]') == "1.00 €"
        assert text(page, '#cp-CP1 [data-field="kw"]') == "11.0 kW"
        assert "CP1" in text(page, '[data-panel="sessions"]')
        page.screenshot(path=str(artifacts / "board-2-supplying.png"), full_page=True)
        assert page.evaluate("window.__sameDocument") is True  # live, not reloaded

        ticket = system.loop.run(cp.unplug(session_id, 2.5))
        assert ticket.body["total_eur"] == 1.0
        tile_state(page, "CP1", "ACTIVATED")
        page.wait_for_selector('[data-panel="tickets"] >> text=2.500 kWh')
        # The revenue page, open all along, takes the ticket in without a reload.
        expected = f"{before + 1.0:,.2f} €"
        revenue.wait_for_selector(f'#total-eur:text-is("{expected}")')
        assert text(revenue, "#tickets tbody tr:first-child th") == "CP1"
        revenue.screenshot(path=str(artifacts / "revenue.png"), full_page=True)
    finally:
        system.loop.run(drv.close())
        revenue.close()


def test_a_fault_turns_the_tile_red_at_once(page: Any, system: LiveSystem, artifacts: Path) -> None:
    open_board(page, system)
    cp = system.connect("CP2")
    tile_state(page, "CP2", "ACTIVATED")
    assert cp.monitor is not None
    monitor = cp.monitor

    def fault() -> None:
        cp.engine_ok = False
        monitor.send(MessageType.ENGINE_STATUS, {"ok": False, "reason": "engine KO"})

    sent = time.monotonic()
    system.loop.call(fault)
    tile_state(page, "CP2", "BROKEN")
    shown_after = time.monotonic() - sent
    shown = text(page, "#cp-CP2")
    assert "Broken" in shown and "Fault: engine KO" in shown
    assert background(page, "CP2") == RED
    page.wait_for_selector('[data-panel="feed"] >> text=CP2: broken (engine KO)')
    print(f"fault shown on the page after {shown_after * 1000:.0f} ms")
    page.screenshot(path=str(artifacts / "board-3-broken.png"), full_page=True)


def test_the_operator_logs_in_and_stops_a_cp_which_turns_orange(
    page: Any, system: LiveSystem, artifacts: Path
) -> None:
    system.connect("CP3")
    board = page.context.new_page()
    open_board(board, system)
    tile_state(board, "CP3", "ACTIVATED")

    page.goto(system.url("/operator"))
    page.get_by_label("Operator token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    assert "That is not the operator token." in text(page, "#login-error")
    login(page, system)

    row = page.locator("#op-CP3")
    row.get_by_role("button", name="Stop CP3").click()
    page.wait_for_selector("text=Stop CP3: done.")
    page.wait_for_selector('[data-cp-state="CP3"]:text-is("Out of Order")')
    page.screenshot(path=str(artifacts / "operator.png"), full_page=True)

    tile_state(board, "CP3", "STOPPED")  # the open board, live
    shown = text(board, "#cp-CP3")
    assert "Out of Order" in shown and "Stopped by operator" in shown
    assert background(board, "CP3") == ORANGE
    assert background(board, "CP4") == GREY  # never connected: grey
    board.screenshot(path=str(artifacts / "board-4-stopped.png"), full_page=True)
    board.close()


def test_the_audit_page_shows_the_events_and_exports_csv(
    page: Any, system: LiveSystem, artifacts: Path
) -> None:
    login(page, system)
    price = page.locator("#op-CP4")
    price.get_by_label("Price of CP4 in €/kWh").fill("0.55")
    price.get_by_role("button", name="Set the price of CP4").click()
    page.wait_for_selector("text=Price of CP4 set to 0.55 €/kWh: done.")

    page.get_by_role("link", name="Audit log").click()
    page.wait_for_selector("#chain")
    assert "Hash chain intact" in text(page, "#chain")
    table = text(page, "#audit")
    assert "cp.price_changed" in table and "cp.state_changed" in table
    page.get_by_label("Action").fill("cp.price_changed")
    page.get_by_label("Charge point").fill("CP4")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"action=cp.price_changed"))
    rows = page.locator("#audit tbody tr")
    assert rows.count() == 1
    row = rows.first.inner_text()
    assert "operator" in row and "0.55" in row
    page.screenshot(path=str(artifacts / "audit.png"), full_page=True)

    with page.expect_download() as info:
        page.get_by_role("link", name="Download as CSV").click()
    download = info.value
    assert re.fullmatch(r"audit-\d{8}T\d{6}Z\.csv", download.suggested_filename)
    target = artifacts / download.suggested_filename
    download.save_as(str(target))
    lines = list(csv.reader(io.StringIO(target.read_text())))
    assert lines[0][:5] == ["id", "ts", "actor", "source_ip", "action"]
    assert [line[4] for line in lines[1:]] == ["cp.price_changed"]
    assert lines[1][5] == "CP4"


def test_the_operator_registers_a_cp_through_the_registry_and_it_goes_live(
    page: Any, system: LiveSystem, artifacts: Path
) -> None:
    board = page.context.new_page()
    open_board(board, system)
    login(page, system)
    form = page.locator("form[action$='/operator/register']")
    form.get_by_label("Charge point id").fill("bad id!")
    form.get_by_label("Price in €/kWh (optional)").fill("0.12345")
    form.get_by_role("button", name="Register").click()
    assert page.locator("#reg-id").get_attribute("aria-invalid") == "true"
    assert "Not a valid id" in text(page, "#reg-id-error")
    assert "1-64 printable" in text(page, "#reg-location-error")
    assert "4 decimal places" in text(page, "#reg-price-error")
    page.screenshot(path=str(artifacts / "register-invalid.png"), full_page=True)

    form = page.locator("form[action$='/operator/register']")
    form.get_by_label("Charge point id").fill("CP9")
    form.get_by_label("Location").fill("Zaragoza")
    form.get_by_label("Price in €/kWh (optional)").fill("0.33")
    form.get_by_role("button", name="Register").click()
    page.wait_for_selector("h1:text-is('Charge point CP9 registered')")
    secret = text(page, "#secret")
    assert len(secret) >= 40

    # The Registry's event puts the new CP on the open board, grey until it connects...
    tile_state(board, "CP9", "DISCONNECTED")
    assert "Zaragoza" in text(board, "#cp-CP9") and "0.33 €/kWh" in text(board, "#cp-CP9")
    # ...and the secret shown once is the one that lets it in.
    system.secrets["CP9"] = secret
    system.connect("CP9")
    tile_state(board, "CP9", "ACTIVATED")
    board.screenshot(path=str(artifacts / "board-5-registered.png"), full_page=True)
    board.close()


def test_weather_shows_per_location_and_the_operator_clears_an_alert(
    page: Any, system: LiveSystem, artifacts: Path
) -> None:
    central = system.central
    board = page.context.new_page()
    board.set_viewport_size({"width": 390, "height": 844})  # a phone: tiles stack
    open_board(board, system)
    reading = {"location": "Valencia", "temperature_c": 3.5, "status": "ok"}
    assert central.post("/weather/readings", reading).status_code == 202
    board.wait_for_selector('#cp-CP4 [data-field="weather"]:text-is("3.5 °C")')
    alert = {"location": "Valencia", "temperature_c": -2.0}
    assert central.post("/weather/alerts", alert).status_code == 201
    board.wait_for_selector('#cp-CP4 [data-field="weather"]:has-text("Cold alert")')
    board.wait_for_selector('[data-panel="weather"] >> text=Cold alert')
    board.wait_for_selector('[data-panel="feed"] >> text=Weather alert in Valencia (-2.0 °C)')
    board.screenshot(path=str(artifacts / "board-6-phone-weather-alert.png"), full_page=True)

    login(page, system)
    alerts = page.locator("section[aria-labelledby='h-alerts']")
    alerts.get_by_role("button", name="Clear the alert in Valencia").click()
    page.wait_for_selector("text=Clear the weather alert in Valencia: done.")
    board.wait_for_selector('#cp-CP4 [data-field="weather"]:text-is("-2.0 °C")')
    assert "Weather alert cleared in Valencia" in text(board, '[data-panel="feed"]')
    board.close()
