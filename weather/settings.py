"""``ev-weather`` settings: flags, ``EV_*`` environment variables, secrets. No I/O but reading.

:func:`parse_settings` validates everything before the office polls or listens, so a
bad setting is one clear line (exit code 2).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.config import (
    HostPort,
    ServiceParser,
    parse_host_port,
    parse_http_url,
    parse_non_negative_float,
    parse_positive_float,
    read_secret,
    require_secret,
)
from common.errors import ConfigError
from weather.providers import DEFAULT_OPENWEATHER_URL

__all__ = [
    "PROG",
    "OpenWeatherSource",
    "SimulatedSource",
    "WeatherSettings",
    "parse_settings",
]

PROG = "ev-weather"
DESCRIPTION = """EVCharging weather office: polls the temperature of every watched location and
raises a cold alert at API_Central below 0 °C, clearing it above +HYSTERESIS °C.

Simulated (offline):  ev-weather --locations cities.txt --temperatures temps.txt
OpenWeather:          EV_OPENWEATHER_API_KEY=... ev-weather --provider openweather \
                          --locations cities.txt

Secrets (environment or *_FILE, never flags):
  EV_WEATHER_TOKEN        required; this office's own token, which Central must be
                          given too: it raises and clears alerts and posts readings at
                          API_Central (nothing else), and guards the HTTP writes below
  EV_OPENWEATHER_API_KEY  required with --provider openweather

Menu (type while it runs): add CITY, remove CITY, list, quit.
HTTP: GET /locations, POST /locations {"location": CITY}, DELETE /locations/CITY."""

PROVIDERS = ("simulated", "openweather")


@dataclass(frozen=True)
class OpenWeatherSource:
    """``--provider openweather``: the API's base URL and its key (kept out of ``repr``)."""

    url: str
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class SimulatedSource:
    """``--provider simulated``: the temperatures file and the default drift per poll."""

    temperatures: Path
    drift: float


@dataclass(frozen=True, kw_only=True)
class WeatherSettings:
    """Everything ``ev-weather`` needs. The token is kept out of ``repr``."""

    token: str = field(repr=False)
    source: OpenWeatherSource | SimulatedSource
    interval: float
    hysteresis: float
    locations: Path | None
    listen: HostPort
    central_api: str
    menu: bool
    log_level: str


def _provider_name(text: str) -> str:
    if text not in PROVIDERS:
        raise ValueError(f"expected one of {', '.join(PROVIDERS)}")
    return text


def _parser(env: Mapping[str, str]) -> ServiceParser:
    parser = ServiceParser(PROG, DESCRIPTION, env)
    option = parser.option
    option(
        "--provider",
        env="EV_WEATHER_PROVIDER",
        default="simulated",
        parse=_provider_name,
        help="where temperatures come from: simulated or openweather",
    )
    option(
        "--interval",
        env="EV_WEATHER_INTERVAL",
        default=4.0,
        parse=parse_positive_float,
        help="seconds between polls of every location",
    )
    option(
        "--locations",
        env="EV_WEATHER_LOCATIONS",
        default=None,
        parse=Path,
        help="file of locations to watch, re-read while running (unset: menu/HTTP only)",
    )
    option(
        "--temperatures",
        env="EV_WEATHER_TEMPERATURES",
        default=None,
        parse=Path,
        help="simulated provider's file of 'City: temp' lines or JSON "
        "(unset: DATA_DIR/weather-temperatures.txt)",
    )
    option(
        "--drift",
        env="EV_WEATHER_DRIFT",
        default=0.0,
        parse=float,
        help="simulated: degrees added per poll to cities without their own drift",
    )
    option(
        "--hysteresis",
        env="EV_WEATHER_HYSTERESIS",
        default=1.0,
        parse=parse_non_negative_float,
        help="an alert clears only above +HYSTERESIS °C",
    )
    option(
        "--listen",
        env="EV_WEATHER_LISTEN",
        default=parse_host_port("127.0.0.1:8002"),
        parse=parse_host_port,
        help="HTTP address of the locations endpoint",
    )
    option(
        "--central-api",
        env="EV_CENTRAL_API",
        default="http://127.0.0.1:8001",
        parse=parse_http_url,
        help="API_Central base URL",
    )
    option(
        "--openweather-url",
        env="EV_OPENWEATHER_URL",
        default=DEFAULT_OPENWEATHER_URL,
        parse=parse_http_url,
        help="base URL of the OpenWeather-compatible API",
    )
    parser.data_dir_option("where the default temperatures file lives")
    parser.log_level_option()
    parser.add_argument("--no-menu", action="store_true", help="do not read commands from stdin")
    return parser


def _weather_token(env: Mapping[str, str]) -> str:
    """EV_WEATHER_TOKEN; the operator token, which this office once used, is refused."""
    token = read_secret("EV_WEATHER_TOKEN", env)
    if token is None:
        hint = ""
        if read_secret("EV_OPERATOR_TOKEN", env):
            hint = "; the office no longer takes EV_OPERATOR_TOKEN: give it (and Central) its own"
        raise ConfigError(
            "EV_WEATHER_TOKEN", f"not set (set EV_WEATHER_TOKEN or EV_WEATHER_TOKEN_FILE{hint})"
        )
    return token


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> WeatherSettings:
    """Parse flags, environment and secrets into :class:`WeatherSettings`.

    Raises:
        ConfigError: anything missing or malformed, in one line.
    """
    env = os.environ if env is None else env
    args = _parser(env).parse_args(list(argv))
    token = _weather_token(env)
    source: OpenWeatherSource | SimulatedSource
    if args.provider == "openweather":
        source = OpenWeatherSource(
            args.openweather_url, require_secret("EV_OPENWEATHER_API_KEY", env)
        )
    else:
        temperatures = args.temperatures or args.data_dir / "weather-temperatures.txt"
        source = SimulatedSource(temperatures, args.drift)
    return WeatherSettings(
        token=token,
        source=source,
        interval=args.interval,
        hysteresis=args.hysteresis,
        locations=args.locations,
        listen=args.listen,
        central_api=args.central_api,
        menu=not args.no_menu,
        log_level=args.log_level,
    )
