"""``python -m weather`` as a real process against a local OpenWeather stand-in.

The API key must never appear in what the process writes, even at DEBUG level where
urllib3 logs every request URL, and a missing API_Central is one line, not a traceback.
"""

from __future__ import annotations

import re
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from common.procs import ServiceProcess
from tests.support.broker import wait_until
from tests.support.fake_openweather import QUOTA_BODY, FakeOpenWeather, Reply

pytestmark = pytest.mark.integration

KEY = "c0ffee5ecret0123456789abcdef4242"
CITIES = ["Oslo", "Madrid", "Rome", "Tromso", "Atlantis"]


@pytest.fixture
def fake() -> Iterator[FakeOpenWeather]:
    # The service expects another key: every unscripted request is a genuine 401.
    server = FakeOpenWeather("the-key-openweather-expects", {"Oslo": -4.0}).start()
    server.script("Madrid", Reply(429, QUOTA_BODY, {"Retry-After": "60"}))
    server.script("Rome", Reply(500, {"cod": "500", "message": "Internal error"}))
    server.script("Tromso", Reply(200, '{"main": {"temp": '))
    yield server
    server.stop()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_api_key_never_appears_in_logs_or_output(
    fake: FakeOpenWeather,
    services: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    key_file = tmp_path / "openweather.key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    (tmp_path / "locations.txt").write_text("\n".join(CITIES) + "\n", encoding="utf-8")
    weather = services(
        [
            sys.executable,
            "-m",
            "weather",
            "--provider",
            "openweather",
            "--interval",
            "0.2",
            "--locations",
            str(tmp_path / "locations.txt"),
            "--listen",
            "127.0.0.1:0",
            "--central-api",
            f"http://127.0.0.1:{closed_port()}",
            "--log-level",
            "DEBUG",
            "--no-menu",
        ],
        env={
            "EV_WEATHER_TOKEN": "weather-token-for-test",
            "EV_OPENWEATHER_API_KEY_FILE": str(key_file),
            "EV_OPENWEATHER_URL": fake.url,
        },
        name="weather",
    )
    url = weather.wait_ready("weather")["url"]
    wait_until(
        lambda: all(fake.count(c) >= 2 for c in ("Oslo", "Rome", "Tromso", "Atlantis")),
        15,
        "every city to be asked twice",
    )
    rows = {
        r["location"]: r for r in requests.get(f"{url}/locations", timeout=5).json()["locations"]
    }
    assert weather.stop() == 0

    assert {r["appid"] for r in fake.requests} == {KEY}, "the key really was sent"
    assert fake.count("Madrid") == 1, "no retry before Retry-After has passed"
    output = weather.output()
    assert KEY not in output
    assert "appid=***" in output  # urllib3's DEBUG line, redacted
    assert "Traceback" not in output
    assert output.count("is unreachable (connection refused)") == 1
    for city, said in [
        ("Oslo", "401: Invalid API key"),
        ("Atlantis", "401: Invalid API key"),
        ("Madrid", "429: Your account is temporary blocked"),
        ("Rome", "500: Internal error"),
        ("Tromso", "not JSON"),
    ]:
        assert rows[city]["status"] == "UNKNOWN" and rows[city]["alert"] is None
        assert said in rows[city]["reason"] and KEY not in rows[city]["reason"]
        assert f'location="{city}"' in output and said in output


def test_menu_on_stdin_adds_lists_and_quits(tmp_path: Path) -> None:
    (tmp_path / "temps.txt").write_text("Oslo: -2\nBergen: 3 drift 0.5\n", encoding="utf-8")
    proc = ServiceProcess(
        [
            sys.executable,
            "-m",
            "weather",
            "--temperatures",
            str(tmp_path / "temps.txt"),
            "--interval",
            "0.2",
            "--listen",
            "127.0.0.1:0",
            "--central-api",
            f"http://127.0.0.1:{closed_port()}",
        ],
        env={"EV_WEATHER_TOKEN": "t"},
        log_path=tmp_path / "weather.log",
        stdin_pipe=True,
    ).start()
    try:
        proc.wait_ready("weather", timeout=30)
        proc.send("add Oslo\nadd Bergen\nadd a/b")

        def oslo_listed() -> str | None:
            """Oslo's line of a 'list', once a poll has measured it; asks again if not."""
            proc.send("list")
            time.sleep(0.3)
            measured = re.compile(r"Oslo .*\d °C")
            return next((ln for ln in proc.output().splitlines() if measured.search(ln)), None)

        oslo = wait_until(oslo_listed, 20, lambda: f"Oslo measured in:\n{proc.tail()}")
        proc.send("quit")
        assert proc.wait(20) == 0, proc.tail()
    finally:
        proc.stop()
    out = proc.output()
    assert "watching Oslo" in out and "watching Bergen" in out and "error: 'a/b'" in out
    assert "ALERT" in oslo and "-2.0 °C" in oslo and "not delivered yet" in oslo
    assert "weather office stopped" in out and "Traceback" not in out
