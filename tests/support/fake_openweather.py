"""A local stand-in for OpenWeather's "current weather data" API, on a real socket.

It answers ``GET /data/2.5/weather?q=CITY&appid=KEY&units=metric`` the way the real
service does: 200 with the full body (``main.temp`` in °C for ``units=metric``, Kelvin
without), 401 ``{"cod":401,"message":"Invalid API key. ..."}`` for a wrong ``appid``,
404 ``{"cod":"404","message":"city not found"}`` for an unknown city. A test scripts any
other answer (429, 500, a broken body, a slow one) per city with :meth:`script`.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

from common.http import WsgiServer

__all__ = [
    "BAD_KEY_BODY",
    "CITY_NOT_FOUND_BODY",
    "QUOTA_BODY",
    "FakeOpenWeather",
    "Reply",
    "weather_body",
]

BAD_KEY_BODY = {
    "cod": 401,
    "message": "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info.",
}
CITY_NOT_FOUND_BODY = {"cod": "404", "message": "city not found"}
QUOTA_BODY = {
    "cod": 429,
    "message": "Your account is temporary blocked due to exceeding of requests limitation of "
    "your subscription type. Please choose the proper subscription https://openweathermap.org/price",
}


def weather_body(city: str, temp_c: float, units: str | None) -> dict[str, Any]:
    """A 200 body shaped like the real one (fields trimmed to the usual set)."""
    temp = temp_c if units == "metric" else round(temp_c + 273.15, 2)
    return {
        "coord": {"lon": 10.7461, "lat": 59.9127},
        "weather": [{"id": 800, "main": "Clear", "description": "clear sky", "icon": "01n"}],
        "base": "stations",
        "main": {
            "temp": temp,
            "feels_like": temp - 3,
            "temp_min": temp - 1,
            "temp_max": temp + 1,
            "pressure": 1021,
            "humidity": 80,
        },
        "visibility": 10000,
        "wind": {"speed": 3.1, "deg": 200},
        "clouds": {"all": 0},
        "dt": int(time.time()),
        "sys": {"country": "NO", "sunrise": 1700000000, "sunset": 1700030000},
        "timezone": 3600,
        "id": 3143244,
        "name": city,
        "cod": 200,
    }


@dataclass(frozen=True)
class Reply:
    """A scripted answer: ``body`` is JSON (dict) or raw text; ``delay`` in seconds."""

    status: int
    body: dict[str, Any] | str = ""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class FakeOpenWeather:
    """The fake service. ``temperatures`` maps known cities to °C; ``requests`` logs calls."""

    def __init__(self, api_key: str, temperatures: dict[str, float] | None = None) -> None:
        self.api_key = api_key
        self.temperatures: dict[str, float] = dict(temperatures or {})
        self.requests: list[dict[str, str]] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._released = threading.Event()
        self._lock = threading.Lock()
        self._server: WsgiServer | None = None
        self.url = ""

    def reset(self, temperatures: dict[str, float]) -> None:
        """Forget scripts and recorded requests; serve ``temperatures`` (one server, many tests)."""
        with self._lock:
            self.temperatures = dict(temperatures)
            self.requests.clear()
            self._scripts.clear()
            self._released.set()  # answers still sleeping from the last test go now
            self._released = threading.Event()

    def script(self, city: str, *replies: Reply) -> None:
        """Answer the next requests for ``city`` with ``replies`` (the last one repeats)."""
        with self._lock:
            self._scripts[city] = list(replies)

    def count(self, city: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.get("q") == city)

    def start(self) -> FakeOpenWeather:
        app = Flask("fake_openweather")
        app.add_url_rule("/data/2.5/weather", view_func=self._weather)
        self._server = WsgiServer(app, "127.0.0.1", 0, threads=8)
        host, port = self._server.start_thread()
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._released.set()  # wake slow answers so the server can stop at once
        if self._server is not None:
            self._server.stop()

    def _next_script(self, city: str) -> Reply | None:
        with self._lock:
            self.requests.append(dict(request.args))
            replies = self._scripts.get(city)
            if not replies:
                return None
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _weather(self) -> Response:
        city = request.args.get("q", "")
        reply = self._next_script(city)
        if reply is None:
            reply = self._real_answer(city)
        if reply.delay:
            with self._lock:
                released = self._released
            released.wait(reply.delay)
        body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
        mimetype = "application/json" if isinstance(reply.body, dict) else "text/html"
        return Response(body, reply.status, headers=reply.headers, mimetype=mimetype)

    def _real_answer(self, city: str) -> Reply:
        if request.args.get("appid") != self.api_key:
            return Reply(401, BAD_KEY_BODY)
        if not city:
            return Reply(400, {"cod": "400", "message": "Nothing to geocode"})
        known = {name.lower(): name for name in self.temperatures}
        if city.lower() not in known:
            return Reply(404, CITY_NOT_FOUND_BODY)
        name = known[city.lower()]
        body = weather_body(name, self.temperatures[name], request.args.get("units"))
        return Reply(200, body)
