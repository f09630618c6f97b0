"""``ev-weather``: the weather office (see docs/weather.md)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from common.config import (
    ServiceParser,
    argv_or_default,
    parse_host_port,
    parse_http_url,
    parse_positive_float,
    read_secret,
    run_main,
)
from common.errors import ConfigError
from common.http import WsgiServer
from common.logs import setup_logging
from common.ready import announce
from weather.app import WeatherOffice
from weather.central_client import CentralClient
from weather.endpoint import create_app
from weather.locations import LocationBook
from weather.menu import HELP, run_menu
from weather.providers import (
    DEFAULT_OPENWEATHER_URL,
    OpenWeatherProvider,
    Provider,
    SimulatedProvider,
)
from weather.redaction import install_redaction

__all__ = ["main"]

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
log = logging.getLogger("weather")


def _provider_name(text: str) -> str:
    if text not in PROVIDERS:
        raise ValueError(f"expected one of {', '.join(PROVIDERS)}")
    return text


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


def _parser() -> ServiceParser:
    parser = ServiceParser(PROG, DESCRIPTION)
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
        parse=_non_negative_float,
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


def _provider(args: argparse.Namespace, api_key: str | None) -> Provider:
    if args.provider == "openweather":
        assert api_key is not None
        return OpenWeatherProvider(api_key, args.openweather_url)
    path = args.temperatures or args.data_dir / "weather-temperatures.txt"
    return SimulatedProvider(path, args.drift)


def _weather_token() -> str:
    """EV_WEATHER_TOKEN; the operator token, which this office once used, is refused."""
    token = read_secret("EV_WEATHER_TOKEN", required=False)
    if token is None:
        hint = ""
        if read_secret("EV_OPERATOR_TOKEN", required=False):
            hint = "; the office no longer takes EV_OPERATOR_TOKEN: give it (and Central) its own"
        raise ConfigError(
            "EV_WEATHER_TOKEN", f"not set (set EV_WEATHER_TOKEN or EV_WEATHER_TOKEN_FILE{hint})"
        )
    return token


def _serve(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    setup_logging("weather", args.log_level)
    token = _weather_token()
    api_key = read_secret("EV_OPENWEATHER_API_KEY", required=args.provider == "openweather")
    install_redaction([api_key] if api_key else [])  # urllib3 logs URLs, appid included
    provider = _provider(args, api_key)
    book = LocationBook(args.locations)  # a broken file is reported and may be fixed live
    office = WeatherOffice(
        provider,
        CentralClient(args.central_api, token),
        book,
        hysteresis=args.hysteresis,
        interval=args.interval,
    )
    server = WsgiServer(create_app(office, token), args.listen.host, args.listen.port, threads=4)
    try:
        host, port = server.start_thread()
    except OSError as exc:
        raise ConfigError("--listen", f"cannot listen on {args.listen}: {exc.strerror}") from None

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info(
        f"weather office on http://{host}:{port}",
        extra={
            "fields": {
                "provider": provider.name,
                "interval_s": args.interval,
                "hysteresis_c": args.hysteresis,
                "central_api": args.central_api,
                "locations": ", ".join(book.names()) or "none",
            }
        },
    )
    announce("weather", url=f"http://{host}:{port}")
    if not args.no_menu:
        if sys.stdin.isatty():
            print(HELP, flush=True)
        threading.Thread(
            target=run_menu,
            args=(sys.stdin, office, sys.stdout, stop.set),
            name="menu",
            daemon=True,
        ).start()
    try:
        office.run(stop.wait)
    finally:
        server.stop()
    log.info("weather office stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, lambda: _serve(argv_or_default(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
