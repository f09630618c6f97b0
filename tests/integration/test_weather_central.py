"""``python -m weather`` and ``python -m central`` as real processes, CPs on real sockets.

The user edits the simulated temperatures file; Central's charge points follow.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from central.drivers import add_driver
from common.procs import ServiceProcess
from common.protocol.messages import MessageType
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.broker import wait_until
from tests.support.central import (
    CentralProcess,
    ScriptedCP,
    driver,
    provision_cp,
    start_central,
)
from tests.support.scrypt import CHEAP_SCRYPT

pytestmark = pytest.mark.integration

Services = Callable[..., ServiceProcess]


def write(path: Path, text: str) -> None:
    """Replace the file at once, as an editor saving it would."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def start_weather(
    services: Services, tmp_path: Path, central_api: str, token: str, *extra: str
) -> tuple[ServiceProcess, str]:
    proc = services(
        [
            sys.executable,
            "-m",
            "weather",
            "--interval",
            "0.5",
            "--locations",
            str(tmp_path / "locations.txt"),
            "--temperatures",
            str(tmp_path / "temperatures.txt"),
            "--listen",
            "127.0.0.1:0",
            "--central-api",
            central_api,
            "--no-menu",
            *extra,
        ],
        env={"EV_WEATHER_TOKEN": token},
        name="weather",
    )
    return proc, proc.wait_ready("weather", timeout=20)["url"]


async def wait_weather(
    central: CentralProcess, check: Callable[[dict[str, Any]], bool], timeout: float = 10
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        weather = (await asyncio.to_thread(central.get, "/weather")).json()
        if check(weather):
            return dict(weather)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"GET /api/weather is still {weather} after {timeout} s")
        await asyncio.sleep(0.1)


def test_cold_file_stops_the_location_after_its_supply_and_warm_resumes(
    central: CentralProcess, services: Services, tmp_path: Path
) -> None:
    secrets_ = {
        "CP1": provision_cp(central.db_url, "CP1", "Oslo"),
        "CP2": provision_cp(central.db_url, "CP2", "Oslo"),
        "CP3": provision_cp(central.db_url, "CP3", "Sevilla"),
    }
    d_secret = add_driver(central.db_url, "D1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)
    temperatures = tmp_path / "temperatures.txt"
    write(temperatures, "# edited by the test\nOslo: 5\nSevilla: 21.5\n")
    write(tmp_path / "locations.txt", "Oslo\nSevilla\n")
    weather, weather_url = start_weather(services, tmp_path, central.api, central.weather_token)

    async def scenario() -> None:
        cps = {c: await ScriptedCP(c, s, central.addr).connect() for c, s in secrets_.items()}
        for c in cps:
            await central.wait_state(c, "ACTIVATED")
        drv = await driver(central.addr, "D1", d_secret)
        drv.send(MessageType.CHARGE_REQUEST, {"cp_id": "CP1"})
        session_id = await cps["CP1"].accept_authorization()
        cps["CP1"].plug(session_id)
        await central.wait_state("CP1", "SUPPLYING")
        shown = await wait_weather(central, lambda w: "Sevilla" in w["readings"])
        assert shown["alerts"] == []
        assert shown["readings"]["Oslo"] == {
            "temperature_c": 5.0,
            "status": "ok",
            "reason": None,
            "alert": False,
        }
        assert shown["readings"]["Sevilla"]["temperature_c"] == 21.5

        write(temperatures, "# edited by the test\nOslo: -5\nSevilla: 21.5\n")
        await central.wait_state("CP2", "STOPPED")  # idle: stops at once
        shown = await wait_weather(
            central, lambda w: w["readings"]["Oslo"]["temperature_c"] == -5.0
        )
        assert shown["alerts"] == ["Oslo"] and shown["readings"]["Oslo"]["alert"] is True
        await asyncio.sleep(1.0)  # two polls: the supply is left to finish
        assert (await asyncio.to_thread(central.cp, "CP1"))["state"] == "SUPPLYING"
        assert (await asyncio.to_thread(central.cp, "CP3"))["state"] == "ACTIVATED"
        cps["CP1"].telemetry(session_id, 3.0)
        await cps["CP1"].unplug(session_id, 3.0)
        ticket = await drv.recv_until({MessageType.TICKET}, 5)
        assert ticket.body["kwh"] == 3.0
        await central.wait_state("CP1", "STOPPED")

        write(temperatures, "# edited by the test\nOslo: 5\nSevilla: 21.5\n")
        await central.wait_state("CP1", "ACTIVATED")
        await central.wait_state("CP2", "ACTIVATED")
        shown = await wait_weather(central, lambda w: w["alerts"] == [])
        assert (await asyncio.to_thread(central.cp, "CP3"))["state"] == "ACTIVATED"

        # A location added while it runs, through the office's own endpoint: unknown city.
        added = await asyncio.to_thread(
            requests.post,
            f"{weather_url}/locations",
            json={"location": "Atlantis"},
            headers={"Authorization": f"Bearer {central.weather_token}"},
            timeout=5,
        )
        assert added.status_code == 201
        shown = await wait_weather(central, lambda w: "Atlantis" in w["readings"])
        atlantis = shown["readings"]["Atlantis"]
        assert (atlantis["temperature_c"], atlantis["status"], atlantis["alert"]) == (
            None,
            "UNKNOWN",
            False,
        )
        assert atlantis["reason"], "an UNKNOWN reading says why"
        assert (tmp_path / "locations.txt").read_text(encoding="utf-8") == (
            "Oslo\nSevilla\nAtlantis\n"
        )
        await drv.close()
        for cp in cps.values():
            await cp.close()

    asyncio.run(scenario())
    log = weather.output()
    assert "cold alert raised" in log and "cold alert cleared" in log
    assert "Traceback" not in log
    assert weather.stop() == 0


def test_an_alert_decided_while_central_is_down_is_delivered_when_it_is_back(
    services: Services, tmp_path: Path, sqlite_url: str, free_port: Callable[[], int]
) -> None:
    port, api_port = free_port(), free_port()
    token = "weather-test-token"
    write(tmp_path / "temperatures.txt", "Oslo: -3\n")
    write(tmp_path / "locations.txt", "Oslo\n")
    weather, _ = start_weather(services, tmp_path, f"http://127.0.0.1:{api_port}", token)
    weather.wait_for_line(r"API_Central at .* is unreachable \(connection refused\)")
    central = start_central(tmp_path, sqlite_url, port, api_port, weather_token=token)
    try:
        secret = provision_cp(sqlite_url, "CP1", "Oslo")

        async def scenario() -> None:
            cp = await ScriptedCP("CP1", secret, central.addr).connect()
            await central.wait_state("CP1", "STOPPED")
            weather_now = (await asyncio.to_thread(central.get, "/weather")).json()
            assert weather_now["alerts"] == ["Oslo"]
            await cp.close()

        asyncio.run(scenario())
        weather.wait_for_line(r"API_Central reachable again")
        log = weather.output()
        assert log.count("unreachable") == 1, "one line per outage, not one per poll"
        assert "Traceback" not in log
    finally:
        central.proc.stop()


def test_the_weather_token_opens_the_weather_routes_and_nothing_else(
    central: CentralProcess,
) -> None:
    provision_cp(central.db_url, "CP1", "Oslo")
    wait_until(lambda: central.cp("CP1")["state"] != "UNKNOWN", 10, "Central to load CP1")

    def call(method: str, path: str, token: str, body: Any = None) -> int:
        headers = {"Authorization": f"Bearer {token}"}
        url = f"{central.api}{path}"
        return requests.request(method, url, json=body, headers=headers, timeout=20).status_code

    office = central.weather_token
    # What the office does: raise, clear, report.
    assert call("POST", "/weather/alerts", office, {"location": "Oslo", "temperature_c": -3}) == 201
    assert call("DELETE", "/weather/alerts/Oslo", office) == 200
    reading = {"location": "Oslo", "temperature_c": 4.5, "status": "ok"}
    assert call("POST", "/weather/readings", office, reading) == 202
    # What a thief of the office's token used to be able to do with the operator token.
    refused = [
        ("PUT", "/chargepoints/CP1/price", {"price_eur_kwh": 9}),
        ("POST", "/chargepoints/CP1/stop", None),
        ("POST", "/chargepoints/CP1/revoke-key", None),
        ("POST", "/chargepoints/stop-all", None),
        ("POST", "/sessions", {"driver_id": "D1", "cp_id": "CP1"}),
    ]
    for method, path, body in refused:
        assert call(method, path, office, body) == 401, (method, path)
    # The operator keeps every right, weather routes included.
    assert call("POST", "/weather/alerts", central.token, {"location": "Oslo"}) == 201
    assert call("POST", "/chargepoints/CP1/stop", central.token) == 200
    # Neither token is the other.
    assert call("POST", "/weather/alerts", "not-a-token", {"location": "Oslo"}) == 401


def test_the_office_does_not_take_the_operator_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EV_")}
    env["EV_OPERATOR_TOKEN"] = "operator-token-of-old-setups"
    done = subprocess.run(
        [sys.executable, "-m", "weather", "--no-menu", "--data-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "EV_WEATHER_TOKEN: not set" in done.stderr
    assert "no longer takes EV_OPERATOR_TOKEN" in done.stderr
