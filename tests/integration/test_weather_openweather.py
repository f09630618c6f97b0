"""The OpenWeather provider and the office against a real local HTTP server.

The server (tests/support/fake_openweather.py) answers with OpenWeather's own status
codes and JSON bodies; every failure must become UNKNOWN with its reason, never an
alert raised or cleared, and never show the API key.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, request

from common.http import WsgiServer
from tests.support.clock import FakeClock
from tests.support.fake_openweather import QUOTA_BODY, FakeOpenWeather, Reply, weather_body
from tests.unit.weather.fakes import FakeCentral
from weather.app import WeatherOffice
from weather.central_client import CentralClient
from weather.errors import (
    CentralRejected,
    CentralUnavailable,
    FailureKind,
    ProviderError,
    RateLimited,
)
from weather.locations import LocationBook
from weather.providers import OpenWeatherProvider

pytestmark = pytest.mark.integration

KEY = "5f1c0ffee0ddba11ca5cadef00dbeef1"


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeOpenWeather]:
    server = FakeOpenWeather(KEY).start()  # one server: stopping cheroot takes 0.5 s
    yield server
    server.stop()


@pytest.fixture
def fake(fake_server: FakeOpenWeather) -> FakeOpenWeather:
    fake_server.reset({"Oslo": -5.2, "Madrid": 14.0})
    return fake_server


def provider_for(
    fake: FakeOpenWeather, key: str = KEY, timeout: float = 2.0
) -> OpenWeatherProvider:
    return OpenWeatherProvider(key, fake.url, timeout=timeout)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_good_answer_gives_main_temp_in_celsius(fake: FakeOpenWeather) -> None:
    provider = provider_for(fake)
    assert provider.temperature("Oslo") == -5.2
    assert provider.temperature("madrid") == 14.0
    assert fake.requests[0] == {"q": "Oslo", "appid": KEY, "units": "metric"}


BROKEN_200 = '{"coord": {"lon": 10.7}, "main": {"temp": -5.'


@pytest.mark.parametrize(
    ("reply", "kind", "said"),
    [
        (Reply(404, {"cod": "404", "message": "city not found"}), FailureKind.UNKNOWN_CITY, "404"),
        (Reply(429, QUOTA_BODY), FailureKind.RATE_LIMITED, "429: Your account is temporary"),
        (Reply(500, {"cod": "500", "message": "Internal error"}), FailureKind.SERVER_ERROR, "500"),
        (Reply(502, "<html><body>502 Bad Gateway</body></html>"), FailureKind.SERVER_ERROR, "502"),
        (Reply(200, BROKEN_200), FailureKind.MALFORMED, "not JSON"),
        (Reply(200, {"cod": 200, "name": "Oslo", "main": {}}), FailureKind.MALFORMED, "main.temp"),
        (Reply(200, {"cod": 200, "main": {"temp": "cold"}}), FailureKind.MALFORMED, "main.temp"),
        (Reply(200, {"cod": 200, "main": {"temp": 4e6}}), FailureKind.MALFORMED, "4e+06"),
        (Reply(400, {"cod": "400", "message": "Nothing to geocode"}), FailureKind.BAD_REQUEST, ""),
    ],
    ids=["404", "429", "500", "502-html", "broken-json", "no-temp", "text-temp", "absurd", "400"],
)
def test_each_failure_is_a_provider_error_with_its_reason(
    fake: FakeOpenWeather, reply: Reply, kind: FailureKind, said: str
) -> None:
    fake.script("Oslo", reply)
    with pytest.raises(ProviderError) as caught:
        provider_for(fake).temperature("Oslo")
    assert caught.value.kind is kind
    assert said in caught.value.reason and KEY not in caught.value.reason


def test_a_wrong_key_is_401_from_the_service(fake: FakeOpenWeather) -> None:
    wrong = "not-the-key-" + "9" * 20
    with pytest.raises(ProviderError) as caught:
        provider_for(fake, key=wrong).temperature("Oslo")
    assert caught.value.kind is FailureKind.BAD_KEY
    assert "401: Invalid API key" in caught.value.reason
    assert wrong not in caught.value.reason and wrong not in repr(caught.value)


def test_an_unknown_city_is_404_from_the_service(fake: FakeOpenWeather) -> None:
    with pytest.raises(ProviderError) as caught:
        provider_for(fake).temperature("Atlantis")
    assert caught.value.kind is FailureKind.UNKNOWN_CITY
    assert caught.value.reason == "OpenWeather does not know 'Atlantis' (404: city not found)"


def test_429_with_and_without_retry_after(fake: FakeOpenWeather) -> None:
    fake.script("Oslo", Reply(429, QUOTA_BODY, {"Retry-After": "17"}), Reply(429, QUOTA_BODY))
    provider = provider_for(fake)
    for expected in (17.0, None):
        with pytest.raises(RateLimited) as caught:
            provider.temperature("Oslo")
        assert caught.value.retry_after == expected


def test_a_slow_answer_is_a_timeout(fake: FakeOpenWeather) -> None:
    fake.script("Oslo", Reply(200, weather_body("Oslo", 3.0, "metric"), delay=5.0))
    with pytest.raises(ProviderError) as caught:
        provider_for(fake, timeout=0.3).temperature("Oslo")
    assert caught.value.kind is FailureKind.TIMEOUT
    assert caught.value.reason == "OpenWeather did not answer within 0.3 s"


def test_connection_refused_is_unreachable() -> None:
    provider = OpenWeatherProvider(KEY, f"http://127.0.0.1:{closed_port()}", timeout=1.0)
    with pytest.raises(ProviderError) as caught:
        provider.temperature("Oslo")
    assert caught.value.kind is FailureKind.UNREACHABLE
    assert KEY not in str(caught.value) and caught.value.__suppress_context__


FAILURES = {
    "401": Reply(
        401,
        {
            "cod": 401,
            "message": "Invalid API key. Please see https://openweathermap.org/faq#error401 "
            "for more info.",
        },
    ),
    "404": Reply(404, {"cod": "404", "message": "city not found"}),
    "429": Reply(429, QUOTA_BODY, {"Retry-After": "0"}),
    "500": Reply(500, {"cod": "500", "message": "Internal error"}),
    "malformed": Reply(200, BROKEN_200),
    "timeout": Reply(200, weather_body("Oslo", 3.0, "metric"), delay=5.0),
}


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize("start", [-5.2, 6.0], ids=["during-alert", "while-ok"])
def test_office_reports_unknown_and_keeps_the_alert(
    fake: FakeOpenWeather, failure: str, start: float
) -> None:
    fake.temperatures["Oslo"] = start
    central = FakeCentral()
    office = WeatherOffice(
        provider_for(fake, timeout=0.3), central, LocationBook(initial=["Oslo"]), interval=0.1
    )
    office.poll()
    alerts_before, commands_before = set(central.alerts), central.commands()
    assert alerts_before == ({"Oslo"} if start < 0 else set())
    fake.script("Oslo", FAILURES[failure])
    office.poll()
    office.poll()
    assert central.alerts == alerts_before and central.commands() == commands_before
    for location, temperature, status, reason in central.readings[-2:]:
        assert (location, temperature, status) == ("Oslo", None, "UNKNOWN")
        assert reason and KEY not in reason
    assert office.snapshot()[0]["status"] == "UNKNOWN"
    fake.script("Oslo")  # the service recovers: the real answer again
    fake.temperatures["Oslo"] = 3.0
    office.poll()
    assert central.alerts == set() and central.readings[-1] == ("Oslo", 3.0, "ok", None)


def test_office_does_not_ask_again_before_retry_after(fake: FakeOpenWeather) -> None:
    clock = FakeClock()
    fake.script("Oslo", Reply(429, QUOTA_BODY, {"Retry-After": "60"}), Reply(404, {}))
    fake.temperatures["Oslo"] = -1.0
    central = FakeCentral()
    office = WeatherOffice(
        OpenWeatherProvider(KEY, fake.url, timeout=2.0),
        central,
        LocationBook(initial=["Oslo", "Madrid"]),
        interval=4.0,
        clock=clock,
    )
    office.poll()
    for _ in range(14):  # 56 s
        clock.now += 4.0
        office.poll()
    assert fake.count("Oslo") == 1 and fake.count("Madrid") == 15
    fake.script("Oslo")
    clock.now += 4.0
    office.poll()
    assert fake.count("Oslo") == 2 and central.alerts == {"Oslo"}


# -- the Central client against a scripted API_Central ------------------------------------
class FakeCentralApi:
    """Records requests; answers each with the next scripted status (default 2xx)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any, str]] = []
        self.statuses: list[int] = []
        self._lock = threading.Lock()
        app = Flask("fake_central")
        app.add_url_rule("/api/<path:path>", view_func=self._any, methods=["GET", "POST", "DELETE"])
        self._server = WsgiServer(app, "127.0.0.1", 0, threads=4)
        host, port = self._server.start_thread()
        self.url = f"http://{host}:{port}"

    def _any(self, path: str) -> Response:
        with self._lock:
            self.calls.append(
                (
                    request.method,
                    request.environ.get("REQUEST_URI", request.path),
                    request.get_json(silent=True),
                    request.headers.get("Authorization", ""),
                )
            )
            status = self.statuses.pop(0) if self.statuses else 200
        body = {"error": "x", "message": f"scripted {status}"} if status >= 400 else {}
        return Response(json.dumps(body), status, mimetype="application/json")

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="module")
def central_api_server() -> Iterator[FakeCentralApi]:
    server = FakeCentralApi()
    yield server
    server.stop()


@pytest.fixture
def central_api(central_api_server: FakeCentralApi) -> FakeCentralApi:
    central_api_server.calls.clear()
    central_api_server.statuses.clear()
    return central_api_server


def test_central_client_calls(central_api: FakeCentralApi) -> None:
    client = CentralClient(central_api.url + "/api/", "tok", timeout=2.0)
    central_api.statuses = [201, 404, 202]
    client.raise_alert("São Paulo", -1.5)
    client.clear_alert("São Paulo")  # 404: no alert there, which is what we wanted
    client.post_reading("Oslo", None, "UNKNOWN", "OpenWeather did not answer within 5 s")
    (m1, p1, b1, a1), (m2, p2, _, _), (m3, p3, b3, _) = central_api.calls
    assert (m1, p1, b1, a1) == (
        "POST",
        "/api/weather/alerts",
        {"location": "São Paulo", "temperature_c": -1.5},
        "Bearer tok",
    )
    assert (m2, p2) == ("DELETE", "/api/weather/alerts/S%C3%A3o%20Paulo")
    assert (m3, p3) == ("POST", "/api/weather/readings")
    assert b3 == {
        "location": "Oslo",
        "temperature_c": None,
        "status": "UNKNOWN",
        "reason": "OpenWeather did not answer within 5 s",
    }


@pytest.mark.parametrize(
    ("status", "error"), [(401, CentralRejected), (400, CentralRejected), (503, CentralUnavailable)]
)
def test_central_client_errors(
    central_api: FakeCentralApi, status: int, error: type[Exception]
) -> None:
    central_api.statuses = [status]
    with pytest.raises(error, match=f"{status}: scripted {status}"):
        CentralClient(central_api.url, "tok").raise_alert("Oslo", -1.0)


def test_central_client_unreachable() -> None:
    client = CentralClient(f"http://127.0.0.1:{closed_port()}", "tok", timeout=1.0)
    with pytest.raises(CentralUnavailable, match="unreachable \\(connection refused\\)"):
        client.post_reading("Oslo", 1.0, "ok", None)
