"""``ev-central`` settings: flag > environment > default, secrets, one-line errors (exit 2)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from central.settings import parse_drivers_settings, parse_settings
from common.config import HostPort
from common.errors import ConfigError

ENV = {"EV_OPERATOR_TOKEN": "operator-token"}


def test_defaults(tmp_path: Path) -> None:
    s = parse_settings(["--data-dir", str(tmp_path)], ENV)
    assert (s.listen, s.api) == (HostPort("0.0.0.0", 7000), HostPort("127.0.0.1", 8001))
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'evcharging.db'}"
    assert (s.heartbeat_interval, s.heartbeat_timeout) == (5.0, 15.0)
    assert s.workers == 1 and s.console and s.ocpp is None and s.ocpp_tls is None
    assert s.weather_token is None and s.log_level == "INFO"


def test_flag_beats_environment_and_tokens_stay_out_of_repr() -> None:
    env = {**ENV, "EV_CENTRAL_LISTEN": "127.0.0.1:7001", "EV_WEATHER_TOKEN": "weather-token"}
    assert parse_settings([], env).listen == HostPort("127.0.0.1", 7001)
    s = parse_settings(["--listen", "127.0.0.1:0", "--max-kw", "50", "--no-console"], env)
    assert s.listen == HostPort("127.0.0.1", 0) and s.max_kw == Decimal("50.0")
    assert not s.console and s.weather_token == "weather-token"
    assert "operator-token" not in repr(s) and "weather-token" not in repr(s)


def test_a_heartbeat_timeout_alone_sets_the_interval_and_ocpp_is_parsed() -> None:
    s = parse_settings(["--heartbeat-timeout", "9", "--ocpp", "127.0.0.1:9000"], ENV)
    assert (s.heartbeat_interval, s.heartbeat_timeout) == (3.0, 9.0)
    assert s.ocpp == HostPort("127.0.0.1", 9000) and s.ocpp_tls is None


@pytest.mark.parametrize(
    ("argv", "env", "where"),
    [
        ([], {}, "EV_OPERATOR_TOKEN"),
        ([], {**ENV, "EV_WEATHER_TOKEN": "operator-token"}, "EV_WEATHER_TOKEN"),
        (["--heartbeat-interval", "5", "--heartbeat-timeout", "5"], ENV, "EV_HEARTBEAT_TIMEOUT"),
        (["--ocpp-tls-cert", "c.pem"], ENV, "--ocpp-tls-cert/--ocpp-tls-key"),
        (["--workers", "2"], ENV, "--workers"),
        (["--plug-timeout", "0"], ENV, "--plug-timeout"),
    ],
)
def test_bad_settings_are_one_config_error(
    argv: list[str], env: dict[str, str], where: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(argv, env)
    assert str(caught.value).startswith(f"{where}: ")


def test_drivers_subcommand() -> None:
    add = parse_drivers_settings(["add", "D1", "--secret-file", "d1.secret"], {})
    assert add.add == "D1" and add.secret_file == Path("d1.secret")
    listing = parse_drivers_settings(["--scrypt-n", "16", "list"], {})
    assert listing.add is None and listing.secret_file is None and listing.scrypt.n == 16
    with pytest.raises(ConfigError):
        parse_drivers_settings([], {})
