"""``ev-web`` as a real process against a real Central, a real broker and scripted CPs.

The live stream is read here with plain HTTP (what a browser's EventSource does), so these
run on any machine; tests/browser/ drives a real browser.
"""

from __future__ import annotations

import json
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from central.drivers import add_driver
from common.infra import EmbeddedBroker
from common.protocol.messages import MessageType
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.broker import wait_until
from tests.support.central import (
    CentralProcess,
    ScriptedCP,
    provision_cp,
    start_central,
)
from tests.support.scrypt import CHEAP_SCRYPT
from tests.support.web import LoopThread, WebProcess, start_central_with_events, start_web

pytestmark = pytest.mark.integration


class Stream:
    """An open ``/events`` stream, read by a thread into a queue of (event, data).

    An ``update`` (the latest state of the page's view, a few times a second) is queued as
    one ``tile`` per changed row and one ``panel`` per changed panel.
    """

    def __init__(self, url: str) -> None:
        self.messages: queue.Queue[tuple[float, str, Any]] = queue.Queue()
        self._response = requests.get(f"{url}/events", stream=True, timeout=(5, 30))
        assert self._response.status_code == 200
        assert self._response.headers["Content-Type"].startswith("text/event-stream")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        kind = "message"
        try:
            for line in self._response.iter_lines(decode_unicode=True):
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    self._queue(time.monotonic(), kind, json.loads(line[5:]))
        except (requests.RequestException, AttributeError, ValueError):
            pass  # closed by close() or the server

    def _queue(self, at: float, kind: str, data: Any) -> None:
        if kind != "update":
            self.messages.put((at, kind, data))
            return
        for row in data.get("rows") or (data.get("list") or {}).get("rows") or []:
            self.messages.put((at, "tile", row))
        for name, html in (data.get("panels") or {}).items():
            self.messages.put((at, "panel", {"name": name, "html": html}))

    def wait_for(
        self, kind: str, match: Callable[[Any], bool] = lambda _: True, timeout: float = 10
    ) -> tuple[float, Any]:
        """When the first ``kind`` message satisfying ``match`` arrived, and its data."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching {kind!r} message within {timeout} s")
            try:
                at, got, data = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            if got == kind and match(data):
                return at, data

    def close(self) -> None:
        self._response.close()


@pytest.fixture
def system(
    tmp_path: Path,
    broker: EmbeddedBroker,
    sqlite_url: str,
    free_port: Callable[[], int],
) -> Iterator[tuple[CentralProcess, WebProcess, str]]:
    central = start_central_with_events(
        tmp_path, sqlite_url, free_port(), free_port(), broker.bootstrap
    )
    secret = provision_cp(sqlite_url, "CP1", "Madrid", "0.40")
    wait_until(lambda: central.cp("CP1")["state"] != "UNKNOWN", 10, "Central to load CP1")
    web = start_web(tmp_path, central.api, free_port(), central.token, bootstrap=broker.bootstrap)
    yield central, web, secret
    assert web.proc.stop() == 0, "ev-web did not stop cleanly on SIGTERM"
    central.proc.stop()


def test_a_fault_reaches_the_live_stream_well_under_a_second(
    system: tuple[CentralProcess, WebProcess, str],
) -> None:
    central, web, secret = system
    loop = LoopThread()
    stream = Stream(web.url)
    cp = ScriptedCP("CP1", secret, central.addr)
    try:
        stream.wait_for("snapshot")
        loop.run(cp.connect())
        stream.wait_for("tile", lambda t: t["id"] == "CP1" and t["state"] == "ACTIVATED")
        assert cp.monitor is not None
        monitor = cp.monitor

        def engine(ok: bool) -> None:
            cp.engine_ok = ok  # heartbeats say so too from now on
            monitor.send(MessageType.ENGINE_STATUS, {"ok": ok, "reason": "engine KO"})

        latencies = []
        # The first round also warms Central's relay up (its producer connects on the
        # first event); the second is the steady state an operator watches.
        for _ in range(2):
            sent = time.monotonic()
            loop.call(engine, False)
            arrived, tile = stream.wait_for("tile", lambda t: t["state"] == "BROKEN")
            assert tile["id"] == "CP1" and "Fault: engine KO" in tile["html"]
            latencies.append(arrived - sent)
            _, feed = stream.wait_for("panel", lambda p: p["name"] == "feed")
            assert "engine KO" in feed["html"]
            loop.call(engine, True)
            stream.wait_for("tile", lambda t: t["state"] == "ACTIVATED")
        print("fault -> live stream:", ", ".join(f"{s * 1000:.0f} ms" for s in latencies))
        assert latencies[-1] < 1.0
    finally:
        loop.run(cp.close())
        stream.close()
        loop.close()


def test_health_security_headers_and_static_files(
    system: tuple[CentralProcess, WebProcess, str],
) -> None:
    _, web, _ = system
    wait_until(
        lambda: requests.get(f"{web.url}/healthz", timeout=5).json()["ok"],
        15,
        "the dashboard to report Central and the broker reachable",
    )
    page = requests.get(f"{web.url}/", timeout=5)
    assert page.status_code == 200 and 'id="cp-CP1"' in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert requests.get(f"{web.url}/static/app.js", timeout=5).status_code == 200
    # A POST without the session's CSRF token is refused, even with the right token.
    session = requests.Session()
    refused = session.post(
        f"{web.url}/operator/login", data={"token": web.token}, allow_redirects=False, timeout=5
    )
    assert refused.status_code == 400
    session.close()


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found.group(1)


def _log_in(web: WebProcess) -> tuple[requests.Session, str]:
    browser = requests.Session()
    csrf = _csrf(browser.get(f"{web.url}/operator/login", timeout=5).text)
    done = browser.post(
        f"{web.url}/operator/login",
        data={"token": web.token, "csrf_token": csrf},
        allow_redirects=False,
        timeout=5,
    )
    assert done.status_code == 303
    panel = browser.get(f"{web.url}/operator", allow_redirects=False, timeout=5)
    assert panel.status_code == 200
    return browser, _csrf(panel.text)


def test_logging_out_ends_the_session_on_the_server(
    system: tuple[CentralProcess, WebProcess, str],
) -> None:
    _, web, _ = system
    browser, csrf = _log_in(web)
    stolen = dict(browser.cookies)  # what a thief copied while the operator was logged in
    out = browser.post(
        f"{web.url}/operator/logout", data={"csrf_token": csrf}, allow_redirects=False, timeout=5
    )
    assert out.status_code == 303

    # The signed cookie still verifies, but the server has forgotten its session.
    thief = requests.Session()
    thief.cookies.update(stolen)
    panel = thief.get(f"{web.url}/operator", allow_redirects=False, timeout=5)
    assert panel.status_code == 302 and "/operator/login" in panel.headers["Location"]
    stop = thief.post(
        f"{web.url}/operator/stop-all", data={"csrf_token": csrf}, allow_redirects=False, timeout=5
    )
    assert stop.status_code == 403

    # The operator logs in again and may act.
    browser, csrf = _log_in(web)
    stop = browser.post(
        f"{web.url}/operator/stop-all", data={"csrf_token": csrf}, allow_redirects=False, timeout=5
    )
    assert stop.status_code == 303
    panel = browser.get(f"{web.url}/operator", timeout=5)
    assert "Stop every charge point: done." in panel.text
    browser.close()
    thief.close()


def test_central_going_away_shows_in_the_stream_and_recovers(
    tmp_path: Path,
    broker: EmbeddedBroker,
    sqlite_url: str,
    free_port: Callable[[], int],
) -> None:
    port, api_port = free_port(), free_port()
    central = start_central_with_events(tmp_path, sqlite_url, port, api_port, broker.bootstrap)
    provision_cp(sqlite_url, "CP1", "Madrid", "0.40")
    wait_until(lambda: central.cp("CP1")["state"] != "UNKNOWN", 10, "Central to load CP1")
    web = start_web(tmp_path, central.api, free_port(), central.token, bootstrap=broker.bootstrap)
    stream = Stream(web.url)
    try:
        stream.wait_for("snapshot")
        central.proc.kill()
        _, status = stream.wait_for("status", lambda s: s["central"] is False, timeout=10)
        assert "Central is unreachable" in status["message"]
        central = start_central_with_events(  # the same operator token: the web UI's
            tmp_path,
            sqlite_url,
            port,
            api_port,
            broker.bootstrap,
            name="central-again",
            token=central.token,
        )
        _, status = stream.wait_for("status", lambda s: s["ok"], timeout=15)
        assert status["message"] == ""
    finally:
        stream.close()
        web.proc.stop()
        central.proc.stop()


def test_without_the_operator_token_the_board_is_the_public_one(
    tmp_path: Path, sqlite_url: str, free_port: Callable[[], int]
) -> None:
    central = start_central(tmp_path, sqlite_url, free_port(), free_port())
    provision_cp(sqlite_url, "CP1", "Madrid", "0.40")
    add_driver(sqlite_url, "DRIVER7", CHEAP_SCRYPT, TEST_AUDIT_KEYS)
    wait_until(lambda: central.cp("CP1")["state"] != "UNKNOWN", 10, "Central to load CP1")
    web = start_web(tmp_path, central.api, free_port(), "")  # EV_OPERATOR_TOKEN empty: none
    try:
        wait_until(
            lambda: 'id="cp-CP1"' in requests.get(f"{web.url}/", timeout=5).text,
            15,
            "the board to show CP1 from API_Central's public view",
        )
        assert "DRIVER7" not in requests.get(f"{web.url}/", timeout=5).text
        revenue = requests.get(f"{web.url}/revenue", timeout=5)
        assert revenue.status_code == 502 and "operator token required" in revenue.text
    finally:
        web.proc.stop()
        central.proc.stop()


def test_a_bad_setting_is_one_line_and_exit_code_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "web_ui", "--listen", "nowhere"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("ev-web: error: --listen:")
    assert "Traceback" not in result.stderr
