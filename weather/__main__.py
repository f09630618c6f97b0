"""``ev-weather``: the weather office (see docs/weather.md).

Settings are parsed and checked in :mod:`weather.settings`; this module only wires.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from common.config import argv_or_default, run_main
from common.errors import ConfigError
from common.http import WsgiServer
from common.logs import setup_logging
from common.ready import announce
from weather.app import WeatherOffice
from weather.central_client import CentralClient
from weather.endpoint import create_app
from weather.locations import LocationBook
from weather.menu import HELP, run_menu
from weather.providers import OpenWeatherProvider, Provider, SimulatedProvider
from weather.redaction import install_redaction
from weather.settings import (
    PROG,
    OpenWeatherSource,
    SimulatedSource,
    parse_settings,
)

__all__ = ["main"]

log = logging.getLogger("weather")


def _provider(source: OpenWeatherSource | SimulatedSource) -> Provider:
    if isinstance(source, OpenWeatherSource):
        install_redaction([source.api_key])  # urllib3 logs URLs, appid included
        return OpenWeatherProvider(source.api_key, source.url)
    return SimulatedProvider(source.temperatures, source.drift)


def _serve(argv: list[str]) -> int:
    settings = parse_settings(argv)
    setup_logging("weather", settings.log_level)
    provider = _provider(settings.source)
    book = LocationBook(settings.locations)  # a broken file is reported and may be fixed live
    office = WeatherOffice(
        provider,
        CentralClient(settings.central_api, settings.token),
        book,
        hysteresis=settings.hysteresis,
        interval=settings.interval,
    )
    listen = settings.listen
    server = WsgiServer(create_app(office, settings.token), listen.host, listen.port, threads=4)
    try:
        host, port = server.start_thread()
    except OSError as exc:
        raise ConfigError("--listen", f"cannot listen on {listen}: {exc.strerror}") from None

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
                "interval_s": settings.interval,
                "hysteresis_c": settings.hysteresis,
                "central_api": settings.central_api,
                "locations": ", ".join(book.names()) or "none",
            }
        },
    )
    announce("weather", url=f"http://{host}:{port}")
    if settings.menu:
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
