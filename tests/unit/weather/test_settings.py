"""``ev-weather`` settings: the provider's source, secrets, one-line errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import HostPort
from common.errors import ConfigError
from weather.settings import OpenWeatherSource, SimulatedSource, parse_settings

ENV = {"EV_WEATHER_TOKEN": "weather-token"}


def test_simulated_by_default(tmp_path: Path) -> None:
    s = parse_settings(["--data-dir", str(tmp_path), "--no-menu"], ENV)
    assert s.source == SimulatedSource(tmp_path / "weather-temperatures.txt", 0.0)
    assert s.listen == HostPort("127.0.0.1", 8002) and s.central_api == "http://127.0.0.1:8001"
    assert (s.interval, s.hysteresis, s.locations, s.menu) == (4.0, 1.0, None, False)
    assert s.token == "weather-token" and "weather-token" not in repr(s)


def test_openweather_takes_its_key_from_a_file_and_keeps_it_out_of_repr(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("api-key-123\n")
    env = {**ENV, "EV_OPENWEATHER_API_KEY_FILE": str(tmp_path / "key")}
    s = parse_settings(["--provider", "openweather", "--openweather-url", "http://ow.test/"], env)
    assert s.source == OpenWeatherSource("http://ow.test", "api-key-123")
    assert "api-key-123" not in repr(s)


@pytest.mark.parametrize(
    ("argv", "env", "where"),
    [
        ([], {}, "EV_WEATHER_TOKEN"),
        ([], {"EV_OPERATOR_TOKEN": "t"}, "EV_WEATHER_TOKEN"),
        (["--provider", "openweather"], ENV, "EV_OPENWEATHER_API_KEY"),
        (["--drift", "warm"], ENV, "--drift"),
    ],
)
def test_bad_settings_are_one_config_error(
    argv: list[str], env: dict[str, str], where: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(argv, env)
    assert str(caught.value).startswith(f"{where}: ")
