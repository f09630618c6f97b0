"""The Flask app with a fake Central: pages, login, CSRF, cookies, operator commands."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.unit.web.fakes import FakeCentral, cp
from web_ui.app import create_app
from web_ui.central_client import CentralClient
from web_ui.deps import Clients
from web_ui.errors import UpstreamRejected, UpstreamUnavailable
from web_ui.live import LiveBoard
from web_ui.registry_client import RegistryClient
from web_ui.settings import WebSettings

TOKEN = "operator-token-for-tests"


class FakeRegistry:
    def __init__(self) -> None:
        self.registered: list[tuple[str, str, str | None]] = []
        self.fail: Exception | None = None

    def register(self, cp_id: str, location: str, price: str | None = None) -> dict[str, Any]:
        if self.fail is not None:
            raise self.fail
        self.registered.append((cp_id, location, price))
        return {"id": cp_id, "location": location, "price_eur_kwh": "0.30", "secret": "s3cr3t"}


@pytest.fixture
def central() -> FakeCentral:
    return FakeCentral([cp("CP1"), cp("CP2", "STOPPED", stopped_by=["operator"])])


@pytest.fixture
def registry() -> FakeRegistry:
    return FakeRegistry()


@pytest.fixture
def app(central: FakeCentral, registry: FakeRegistry) -> Iterator[Flask]:
    live = LiveBoard(cast(CentralClient, central))
    clients = Clients(cast(CentralClient, central), live, cast(RegistryClient, registry))
    flask_app = create_app(WebSettings(operator_token=TOKEN, secret_key="k" * 32), clients)
    live.resync()
    yield flask_app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def csrf(client: FlaskClient, path: str = "/operator/login") -> str:
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: FlaskClient) -> str:
    response = client.post(
        "/operator/login", data={"token": TOKEN, "csrf_token": csrf(client), "next": "/operator"}
    )
    assert response.status_code == 303 and response.headers["Location"] == "/operator"
    return csrf(client, "/operator")


def test_board_shows_each_cp_with_its_state_in_words(client: FlaskClient) -> None:
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'id="cp-CP1"' in html and 'data-state="ACTIVATED"' in html and "Available" in html
    assert "Out of Order" in html and "Stopped by the operator" in html
    assert "D1" in html  # connected drivers
    assert 'data-live="board"' in html and "/static/app.js" in html
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert page.headers["Cache-Control"] == "no-store"


def test_an_ocpp_charger_out_of_service_by_itself_says_so(registry: FakeRegistry) -> None:
    central = FakeCentral([cp("OC1", "STOPPED", stopped_by=["charger"])])
    live = LiveBoard(cast(CentralClient, central))
    clients = Clients(cast(CentralClient, central), live, cast(RegistryClient, registry))
    flask_app = create_app(WebSettings(operator_token=TOKEN, secret_key="k" * 32), clients)
    live.resync()
    html = flask_app.test_client().get("/").get_data(as_text=True)
    assert 'id="cp-OC1"' in html and "Out of service at the charger" in html


def test_static_files_are_served_and_nothing_comes_from_elsewhere(client: FlaskClient) -> None:
    for name in ("app.js", "style.css", "favicon.svg"):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200
        response.close()
    html = client.get("/").get_data(as_text=True) + client.get("/revenue").get_data(as_text=True)
    assert not re.search(r'(src|href)="(https?:)?//', html)


def test_operator_pages_need_a_login(client: FlaskClient) -> None:
    for path in ("/operator", "/audit", "/audit.csv"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/operator/login?next=")
    assert client.post("/operator/stop-all", data={"csrf_token": csrf(client)}).status_code == 403


def test_login_sets_a_strict_http_only_cookie_and_logout_ends_it(client: FlaskClient) -> None:
    token = csrf(client)
    response = client.post("/operator/login", data={"token": TOKEN, "csrf_token": token})
    assert response.status_code == 303
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert TOKEN not in cookie  # the token stays on the server
    assert client.get("/operator").status_code == 200
    fresh = csrf(client, "/operator")
    assert fresh != token  # a new CSRF token after logging in
    assert client.post("/operator/logout", data={"csrf_token": fresh}).status_code == 303
    assert client.get("/operator").status_code == 302


def test_a_wrong_token_is_refused_and_repeated_failures_are_throttled(client: FlaskClient) -> None:
    token = csrf(client)
    for _ in range(5):
        response = client.post("/operator/login", data={"token": "nope", "csrf_token": token})
        assert response.status_code == 401
        assert "not the operator token" in response.get_data(as_text=True)
    response = client.post("/operator/login", data={"token": TOKEN, "csrf_token": token})
    assert response.status_code == 429  # even the right token waits now


def test_posts_without_the_csrf_token_are_refused(
    client: FlaskClient, central: FakeCentral
) -> None:
    assert client.post("/operator/login", data={"token": TOKEN}).status_code == 400
    login(client)
    response = client.post("/operator/cp/CP1/stop", data={})
    assert response.status_code == 400
    assert client.post("/operator/cp/CP1/stop", data={"csrf_token": "forged"}).status_code == 400
    assert ("stop", "CP1") not in central.calls


def test_login_redirects_only_to_this_site(client: FlaskClient) -> None:
    token = csrf(client)
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        response = client.post(
            "/operator/login", data={"token": TOKEN, "csrf_token": token, "next": target}
        )
        assert response.headers["Location"] == "/operator"
        client.post("/operator/logout", data={"csrf_token": csrf(client, "/operator")})
        token = csrf(client)


def test_operator_commands_reach_central_and_say_what_happened(
    client: FlaskClient, central: FakeCentral
) -> None:
    token = login(client)
    for path, call in [
        ("/operator/cp/CP1/stop", ("stop", "CP1")),
        ("/operator/cp/CP1/resume", ("resume", "CP1")),
        ("/operator/cp/CP1/revoke-key", ("revoke_key", "CP1")),
        ("/operator/stop-all", ("stop", None)),
        ("/operator/resume-all", ("resume", None)),
    ]:
        response = client.post(path, data={"csrf_token": token})
        assert response.status_code == 303 and response.headers["Location"] == "/operator"
        assert central.calls[-1] == call
    client.post("/operator/cp/CP1/price", data={"csrf_token": token, "price": "0.55"})
    assert central.calls[-1] == ("set_price", ("CP1", "0.55"))
    page = client.get("/operator").get_data(as_text=True)
    assert "Price of CP1 set to 0.55 €/kWh: done." in page

    calls = len(central.calls)
    client.post("/operator/cp/CP1/price", data={"csrf_token": token, "price": "-1"})
    assert len(central.calls) == calls  # refused here, never sent
    assert "from 0 to 100" in client.get("/operator").get_data(as_text=True)

    central.refuse = UpstreamRejected("Central", 404, "not_found", "unknown charge point 'CP9'")
    client.post("/operator/cp/CP9/stop", data={"csrf_token": token})
    assert "refused — unknown charge point" in client.get("/operator").get_data(as_text=True)
    central.refuse = None
    central.down = True
    client.post("/operator/weather/clear", data={"csrf_token": token, "location": "Oslo"})
    central.down = False
    assert "Central is unreachable; nothing was changed" in client.get("/operator").get_data(
        as_text=True
    )


def test_register_validates_then_shows_the_secret_once(
    client: FlaskClient, registry: FakeRegistry
) -> None:
    token = login(client)
    bad = client.post(
        "/operator/register",
        data={"csrf_token": token, "id": "bad id!", "location": "", "price": "1.23456"},
    )
    html = bad.get_data(as_text=True)
    assert bad.status_code == 400 and registry.registered == []
    assert html.count('aria-invalid="true"') == 3
    assert 'value="bad id!"' in html  # what was typed stays in the form

    good = client.post(
        "/operator/register", data={"csrf_token": token, "id": "CP9", "location": "Lyon"}
    )
    assert good.status_code == 200 and registry.registered == [("CP9", "Lyon", None)]
    assert "s3cr3t" in good.get_data(as_text=True) and good.headers["Cache-Control"] == "no-store"

    registry.fail = UpstreamRejected("Registry", 409, "already_registered", "CP9 is taken")
    taken = client.post(
        "/operator/register", data={"csrf_token": token, "id": "CP9", "location": "Lyon"}
    )
    assert taken.status_code == 400 and "CP9 is taken" in taken.get_data(as_text=True)
    registry.fail = UpstreamUnavailable("Registry", "its certificate does not match")
    down = client.post(
        "/operator/register", data={"csrf_token": token, "id": "CP8", "location": "Lyon"}
    )
    assert "Registry is unreachable" in down.get_data(as_text=True)


def test_revenue_shows_totals_charts_and_filtered_tickets(
    client: FlaskClient, central: FakeCentral
) -> None:
    central.stats_view.update(
        revenue_eur=12.5,
        energy_kwh=31.25,
        sessions_finished=3,
        per_cp=[{"cp_id": "CP1", "sessions": 2, "kwh": 20.0, "eur": 8.0}],
        per_day=[{"day": "2026-11-20", "sessions": 3, "kwh": 31.25, "eur": 12.5}],
    )
    central.ended = [
        {
            "session_id": "abcdef0123",
            "cp_id": "CP1",
            "driver_id": "D1",
            "status": "ended",
            "start": "2026-11-20T10:00:00+00:00",
            "end": "2026-11-20T10:30:00+00:00",
            "kwh": 10.0,
            "price_eur_kwh": 0.4,
            "total_eur": 4.0,
            "reason": "unplugged",
        }
    ]
    html = client.get("/revenue?cp_id=CP1&driver_id=D1&status=ended").get_data(as_text=True)
    assert "12.50 €" in html and "31.250 kWh" in html
    assert html.count("<svg") == 6 and "CP1: 8.00 €" in html  # the chart says it in words
    assert "2026-11-20 10:30:00 UTC" in html and "4.00 €" in html
    assert central.calls[-1] == (
        "sessions",
        {"status": "ended", "limit": 100, "cp_id": "CP1", "driver_id": "D1"},
    )
    html = client.get("/revenue?cp_id=no%20such&status=weird").get_data(as_text=True)
    assert "Charge point ids are" in html and "Unknown status" in html


def test_audit_filters_chain_and_csv(client: FlaskClient, central: FakeCentral) -> None:
    login(client)
    central.audit_entries = [
        {
            "id": 1,
            "ts": "2026-11-21T10:00:00+00:00",
            "actor": "operator",
            "source_ip": "127.0.0.1",
            "action": "operator.command",
            "cp_id": "CP1",
            "params": {"command": "stop"},
            "hash": "x",
        }
    ]
    html = client.get(
        "/audit?actor=operator&action=operator.&cp_id=CP1&since=2026-11-21T09:00"
    ).get_data(as_text=True)
    assert "Hash chain intact: verified up to entry 1" in html and "operator.command" in html
    assert central.calls[-1] == (
        "audit",
        {
            "actor": "operator",
            "action": "operator.",
            "cp_id": "CP1",
            "since": "2026-11-21T09:00:00+00:00",
            "limit": 200,
        },
    )
    assert 'href="/audit.csv?' in html
    csv = client.get("/audit.csv?action=operator.")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert csv.headers["Content-Disposition"].startswith('attachment; filename="audit-')
    assert csv.get_data().startswith(b"id,ts,actor")
    assert "expected a date" in client.get("/audit?since=yesterday").get_data(as_text=True)
    assert client.get("/audit.csv?since=yesterday").status_code == 400


def test_central_down_gives_a_clear_page_not_a_traceback(
    client: FlaskClient, central: FakeCentral
) -> None:
    central.down = True
    response = client.get("/revenue")
    assert response.status_code == 503
    assert "Central is unreachable right now" in response.get_data(as_text=True)
    assert client.get("/").status_code == 200  # the board shows the last known state


def test_the_event_stream_starts_with_a_snapshot(client: FlaskClient) -> None:
    response = client.get("/events", buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    chunks = cast(Iterator[bytes], iter(response.response))
    first = next(chunks)
    assert first.startswith(b"retry: ") and b"event: snapshot\n" in first and b"cp-CP1" in first
    response.close()


def test_the_event_stream_refuses_a_bad_kind_or_client_id(client: FlaskClient) -> None:
    assert client.get("/events?for=everything").status_code == 400
    assert client.get("/events?client=x").status_code == 400  # too short to be random
    assert client.get("/events?client=" + "a" * 65).status_code == 400
