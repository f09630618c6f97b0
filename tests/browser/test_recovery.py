"""An open page says when Central or the broker is unreachable, and recovers by itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.infra import EmbeddedBroker
from common.tcp import free_port
from tests.support.broker import wait_until
from tests.support.central import ScriptedCP, provision_cp
from tests.support.web import LoopThread, start_central_with_events, start_web

pytestmark = pytest.mark.integration


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, reduced_motion="reduce")
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def banner(page: Any) -> str:
    return " ".join(str(page.text_content("#banner")).split())


def test_the_banner_shows_outages_and_the_page_recovers_without_a_reload(
    page: Any, tmp_path: Path, fresh_broker: EmbeddedBroker, artifacts: Path
) -> None:
    db_url = f"sqlite:///{tmp_path / 'evcharging.db'}"
    port, api_port = free_port(), free_port()
    central = start_central_with_events(tmp_path, db_url, port, api_port, fresh_broker.bootstrap)
    secret = provision_cp(db_url, "CP1", "Madrid", "0.40")
    wait_until(lambda: central.cp("CP1")["state"] != "UNKNOWN", 10, "Central to load CP1")
    web = start_web(
        tmp_path, central.api, free_port(), central.token, bootstrap=fresh_broker.bootstrap
    )
    loop = LoopThread()
    cp = ScriptedCP("CP1", secret, central.addr)
    try:
        page.goto(f"{web.url}/")
        page.wait_for_selector('#live-indicator[data-state="live"]')
        page.wait_for_selector('#cp-CP1[data-state="DISCONNECTED"]')
        page.evaluate("window.__sameDocument = true")
        assert page.is_hidden("#banner")

        central.proc.kill()
        page.wait_for_selector("#banner:visible")
        assert "Central is unreachable" in banner(page)
        assert page.is_visible("#cp-CP1")  # the last known state stays on screen
        page.screenshot(path=str(artifacts / "board-central-down.png"), full_page=True)

        central = start_central_with_events(  # with the token the web UI holds
            tmp_path,
            db_url,
            port,
            api_port,
            fresh_broker.bootstrap,
            name="central-again",
            token=central.token,
        )
        page.wait_for_selector("#banner", state="hidden")

        fresh_broker.stop()
        page.wait_for_selector("#banner:visible")
        assert "event stream is unreachable" in banner(page)
        page.screenshot(path=str(artifacts / "board-broker-down.png"), full_page=True)
        fresh_broker.start()
        page.wait_for_selector("#banner", state="hidden")

        # Events flow again, through the new broker, to the same page.
        loop.run(cp.connect())
        page.wait_for_selector('#cp-CP1[data-state="ACTIVATED"]')
        assert page.evaluate("window.__sameDocument") is True
    finally:
        loop.run(cp.close())
        loop.close()
        web.proc.stop()
        central.proc.stop()
