"""common.central_api, and the words each service puts on its failures.

API_Central is a scripted ``requests`` transport adapter: the real Session builds each
request (URL, headers, JSON, query string), the adapter records it and answers the next
scripted status and body, or raises the next scripted ``requests`` exception.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import pytest
import requests
from requests.adapters import BaseAdapter

from common.central_api import (
    ApiNotJson,
    ApiStatusError,
    ApiUnreachable,
    CentralApiClient,
    CentralApiError,
    Failure,
    NoToken,
    path_segment,
)
from demo.central_api import ApiUnavailable, CentralApi
from weather.central_client import CentralClient as WeatherClient
from weather.errors import CentralRejected, CentralUnavailable
from web_ui.central_client import CentralClient as WebClient
from web_ui.errors import UpstreamRejected, UpstreamUnavailable

BASE = "http://central:8001"
Answer = tuple[int, Any] | Exception


class ScriptedCentral(BaseAdapter):
    """Answers each request with the next scripted answer (200 ``{}`` when none is left)."""

    def __init__(self, *answers: Answer) -> None:
        super().__init__()
        self.answers = list(answers)
        self.seen: list[tuple[requests.PreparedRequest, Any]] = []
        self.closed = False

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, timeout: Any = None, **_: Any
    ) -> requests.Response:
        self.seen.append((request, timeout))
        answer = self.answers.pop(0) if self.answers else (200, {})
        if isinstance(answer, Exception):
            raise answer
        status, body = answer
        response = requests.Response()
        response.status_code = status
        response.reason = {200: "OK", 404: "NOT FOUND", 502: "BAD GATEWAY"}.get(status, "")
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        response.raw = io.BytesIO(raw)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        self.closed = True

    def sent(self, i: int = -1) -> tuple[str, str, Mapping[str, str], Any]:
        request, _ = self.seen[i]
        body = json.loads(request.body) if request.body else None
        return request.method or "", request.url or "", request.headers, body


def factory(central: ScriptedCentral) -> Callable[[], requests.Session]:
    def make() -> requests.Session:
        session = requests.Session()
        session.mount("http://", central)
        return session

    return make


def client(central: ScriptedCentral, token: str | None = "tok", **kw: Any) -> CentralApiClient:
    return CentralApiClient(BASE + "/api/", token, session_factory=factory(central), **kw)


# -- the common client ---------------------------------------------------------------------
def test_every_call_carries_the_token_the_json_and_the_time_out() -> None:
    central = ScriptedCentral((200, {"cp_id": "CP 1/a", "price_eur_kwh": "0.35"}))
    api = client(central, timeout=2.5)
    assert api.base_url == BASE and api.api_url == BASE + "/api"
    assert api.set_price("CP 1/a", Decimal("0.350")) == {"cp_id": "CP 1/a", "price_eur_kwh": "0.35"}
    method, url, headers, body = central.sent()
    assert (method, url) == ("PUT", BASE + "/api/chargepoints/CP%201%2Fa/price")
    assert headers["Authorization"] == "Bearer tok"
    assert headers["Accept"] == "application/json"
    assert body == {"price_eur_kwh": "0.350"}  # a string: the decimal stays exact
    assert central.seen[-1][1] == 2.5


def test_shared_reads_and_a_query_string() -> None:
    central = ScriptedCentral((200, {"chargepoints": [{"id": "CP1"}]}), (200, {"sessions": 3}))
    api = client(central)
    assert api.chargepoints() == [{"id": "CP1"}]
    assert central.sent()[:2] == ("GET", BASE + "/api/chargepoints")
    assert api.stats() == {"sessions": 3}
    api.call("GET", "/sessions", params={"status": "open", "limit": 5})
    assert central.sent()[1] == BASE + "/api/sessions?status=open&limit=5"


def test_without_a_token_reads_go_bare_and_writes_never_leave() -> None:
    central = ScriptedCentral((200, {"chargepoints": []}))
    api = client(central, token=None)
    assert not api.can_write and client(central).can_write
    api.chargepoints()
    assert "Authorization" not in central.sent()[2]
    with pytest.raises(NoToken, match="PUT /chargepoints/CP1/price needs the operator token"):
        api.set_price("CP1", "0.30")
    assert len(central.seen) == 1


@pytest.mark.parametrize(
    ("error", "failure", "words"),
    [
        (
            requests.ConnectionError("HTTPConnectionPool: [Errno 111] Connection refused"),
            Failure.REFUSED,
            "is unreachable (connection refused)",
        ),
        (
            requests.ConnectionError("Failed to resolve: [Errno -2] Name or service not known"),
            Failure.UNKNOWN_HOST,
            "is unreachable (unknown host)",
        ),
        (requests.ReadTimeout("read timed out"), Failure.TIMEOUT, "did not answer within 1.5 s"),
        (requests.ConnectTimeout("connect timed out"), Failure.TIMEOUT, "did not answer within"),
        (requests.exceptions.SSLError("certificate verify failed"), Failure.LOST, "(SSLError)"),
        (requests.TooManyRedirects("30 redirects"), Failure.OTHER, "(TooManyRedirects)"),
    ],
)
def test_no_answer_is_api_unreachable(error: Exception, failure: Failure, words: str) -> None:
    api = client(ScriptedCentral(error), timeout=1.5)
    with pytest.raises(ApiUnreachable) as caught:
        api.stats()
    assert caught.value.failure is failure and caught.value.retriable
    assert str(caught.value).startswith(f"API_Central at {BASE} ")
    assert words in str(caught.value)
    assert (caught.value.method, caught.value.path) == ("GET", "/stats")
    assert caught.value.detail == type(error).__name__


def test_the_library_text_never_reaches_the_message() -> None:
    error = requests.ConnectionError("HTTPConnectionPool(url=/api/stats?key=hunter2): reset")
    with pytest.raises(ApiUnreachable) as caught:
        client(ScriptedCentral(error)).stats()
    assert "hunter2" not in str(caught.value) and caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(
    ("answer", "code", "message", "retriable"),
    [
        ((404, {"error": "not_found", "message": "no CP9"}), "not_found", "no CP9", False),
        ((401, {"error": "unauthorized", "message": "wrong"}), "unauthorized", "wrong", False),
        ((409, {"message": 7}), None, None, False),  # not a string: not a message
        ((429, {"error": "throttled"}), "throttled", None, True),
        ((408, b""), None, None, True),
        ((503, {"error": "unavailable", "message": "starting"}), "unavailable", "starting", True),
        ((502, b"<html>bad gateway</html>"), None, None, True),
        ((400, ["a", "list"]), None, None, False),
    ],
)
def test_an_error_status_is_api_status_error(
    answer: Answer, code: str | None, message: str | None, retriable: bool
) -> None:
    with pytest.raises(ApiStatusError) as caught:
        client(ScriptedCentral(answer)).call("POST", "/chargepoints/CP9/stop", write=True)
    error = caught.value
    assert isinstance(answer, tuple) and error.status == answer[0]
    assert (error.code, error.message, error.retriable) == (code, message, retriable)
    said = f": {message}" if message else ""
    assert str(error) == f"API_Central answered POST /chargepoints/CP9/stop with {answer[0]}{said}"


def test_ok_says_which_statuses_are_success() -> None:
    central = ScriptedCentral((404, {"error": "not_found"}), (204, b""))
    api = client(central)
    assert api.call("DELETE", "/weather/alerts/Oslo", ok=(200, 404)).status_code == 404
    with pytest.raises(ApiStatusError) as caught:
        api.call("DELETE", "/weather/alerts/Oslo", ok=(200, 404))
    assert caught.value.status == 204 and not caught.value.retriable


def test_a_success_that_is_not_json_is_api_not_json() -> None:
    with pytest.raises(ApiNotJson, match="answered GET /stats with something that is not JSON"):
        client(ScriptedCentral((200, b"<html>"))).stats()


def test_a_subclass_puts_failures_in_its_own_words() -> None:
    class Mine(CentralApiClient):
        def _error(self, exc: CentralApiError) -> Exception:
            return RuntimeError(f"mine: {type(exc).__name__} {exc.path}")

    api = Mine(BASE, None, session_factory=factory(ScriptedCentral((500, {}))))
    with pytest.raises(RuntimeError, match=r"^mine: ApiStatusError /stats$"):
        api.stats()
    with pytest.raises(RuntimeError, match=r"^mine: NoToken /chargepoints/X/price$"):
        api.set_price("X", "1")


def test_each_thread_has_its_own_session_and_close_closes_them_all() -> None:
    central = ScriptedCentral()
    made: list[requests.Session] = []

    def make() -> requests.Session:
        made.append(factory(central)())
        return made[-1]

    api = CentralApiClient(BASE, "tok", session_factory=make)
    api.stats()
    api.stats()
    worker = threading.Thread(target=api.stats)
    worker.start()
    worker.join()
    assert len(made) == 2 and len(central.seen) == 3
    api.close()
    assert central.closed
    api.stats()  # a fresh session after close
    assert len(made) == 3


def test_path_segment_escapes_everything_that_would_route() -> None:
    assert path_segment("São Paulo/../x?y#z") == "S%C3%A3o%20Paulo%2F..%2Fx%3Fy%23z"


# -- the words of each service ---------------------------------------------------------------
REFUSED = requests.ConnectionError("[Errno 111] Connection refused")


def test_the_weather_office_words() -> None:
    def weather(*answers: Answer) -> WeatherClient:
        office = WeatherClient(BASE, "wtok", timeout=2.0)
        office._api = client(ScriptedCentral(*answers), token="wtok", timeout=2.0)
        return office

    with pytest.raises(CentralUnavailable) as down:
        weather(REFUSED).post_reading("Oslo", 1.0, "ok", None)
    assert str(down.value) == f"API_Central at {BASE} is unreachable (connection refused)"
    with pytest.raises(CentralUnavailable, match=r"did not answer within 2 s$"):
        weather(requests.ReadTimeout()).raise_alert("Oslo", -1.0)
    long = "x" * 300
    with pytest.raises(CentralRejected) as refused:
        weather((400, {"error": "bad_request", "message": long})).raise_alert("Oslo", -1.0)
    assert str(refused.value) == f"API_Central refused POST /weather/alerts (400: {'x' * 160})"
    with pytest.raises(CentralUnavailable) as failed:
        weather((503, b"")).clear_alert("São Paulo")
    assert str(failed.value) == "API_Central failed DELETE /weather/alerts/S%C3%A3o%20Paulo (503)"
    weather((404, {"error": "not_found"})).clear_alert("Oslo")  # no alert: cleared


def test_the_dashboard_words() -> None:
    def web(*answers: Answer, token: str | None = "op") -> WebClient:
        return WebClient(BASE, token, session_factory=factory(ScriptedCentral(*answers)))

    cases: list[tuple[WebClient, str]] = [
        (web(REFUSED), "Central is unavailable: connection refused or lost"),
        (web(requests.ConnectTimeout()), "Central is unavailable: no answer in time"),
        (web(requests.TooManyRedirects()), "Central is unavailable: TooManyRedirects"),
        (web((502, b"")), "Central is unavailable: HTTP 502 from /chargepoints/CP1/stop"),
        (web((200, b"<html>")), "Central is unavailable: /chargepoints/CP1/stop did not answer"),
    ]
    for api, words in cases:
        with pytest.raises(UpstreamUnavailable) as down:
            api.stop("CP1")
        assert str(down.value).startswith(words)
    with pytest.raises(UpstreamRejected) as refused:
        web((404, {"error": "not_found", "message": "no CP9"})).revoke_key("CP9")
    assert (refused.value.status, refused.value.code, refused.value.message) == (
        404,
        "not_found",
        "no CP9",
    )
    with pytest.raises(UpstreamRejected) as bare:
        web((404, b"")).resume(None)
    assert (bare.value.code, bare.value.message) == ("error", "NOT FOUND")
    with pytest.raises(UpstreamRejected) as no_token:
        web(token=None).clear_alert("Oslo")
    assert str(no_token.value) == "Central refused (401 unauthorized): no operator token set"


def test_the_demo_words() -> None:
    def demo(*answers: Answer) -> CentralApi:
        api = CentralApi(BASE + "/api", "op")
        api._factory = factory(ScriptedCentral(*answers))
        return api

    assert demo().timeout == 3.0
    cases = [
        (demo(REFUSED), "API_Central unreachable: ConnectionError"),
        (demo(requests.ReadTimeout()), "API_Central unreachable: ReadTimeout"),
        (demo((401, {"error": "unauthorized", "message": "wrong"})), "API_Central 401: wrong"),
        (demo((404, b"")), "API_Central 404: NOT FOUND"),
        (demo((200, b"<html>")), "API_Central answered something that is not JSON"),
    ]
    for api, words in cases:
        with pytest.raises(ApiUnavailable) as caught:
            api.stats()
        assert str(caught.value) == words
