"""Where temperatures come from: OpenWeather, or a file the user edits (simulated).

Both follow :class:`Provider`: :meth:`~Provider.start_poll` once per poll, then
:meth:`~Provider.temperature` per city, which returns °C or raises
:class:`~weather.errors.ProviderError` (never anything else for an expected failure).
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import requests

from weather.errors import FailureKind, ProviderError, RateLimited
from weather.files import CitySpec, FileFormatError, WatchedFile, parse_temperatures

__all__ = [
    "DEFAULT_OPENWEATHER_URL",
    "OpenWeatherProvider",
    "Provider",
    "SimulatedProvider",
    "parse_retry_after",
]

log = logging.getLogger(__name__)

DEFAULT_OPENWEATHER_URL = "https://api.openweathermap.org"
_PLAUSIBLE_C = (-100.0, 100.0)  # outside this, the body is wrong, not the weather
_MAX_MESSAGE = 160


class Provider(Protocol):
    """A source of current temperatures."""

    name: str

    def start_poll(self) -> None:
        """Called once before each poll of every location."""

    def temperature(self, city: str) -> float:
        """The current temperature in °C.

        Raises:
            ProviderError: no temperature this time (``RateLimited`` for a 429).
        """
        ...


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), or None."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


class OpenWeatherProvider:
    """OpenWeather's "current weather data": ``GET {base}/data/2.5/weather?q=&appid=&units=``.

    Args:
        api_key: the ``appid``; it never appears in an error or a log line from here.
        base_url: ``EV_OPENWEATHER_URL`` (a compatible server, or a test's).
        timeout: seconds for connecting and for each read.
        session: a ``requests.Session`` to reuse connections (one is made if omitted).
        clock: wall-clock seconds, to turn a ``Retry-After`` date into a delay.
    """

    name = "openweather"

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_OPENWEATHER_URL,
        *,
        timeout: float = 5.0,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not api_key:
            raise ValueError("an OpenWeather API key is required")
        self._key = api_key
        self._base = base_url.rstrip("/")
        self._url = f"{self._base}/data/2.5/weather"
        self._timeout = timeout
        self._session = session or requests.Session()
        self._clock = clock

    def start_poll(self) -> None:
        """Nothing to prepare: every city is one request."""

    def temperature(self, city: str) -> float:
        params = {"q": city, "appid": self._key, "units": "metric"}
        # Library exception text includes the URL, key and all: translate, never repeat it.
        try:
            response = self._session.get(self._url, params=params, timeout=self._timeout)
        except requests.Timeout:
            raise ProviderError(
                FailureKind.TIMEOUT, f"OpenWeather did not answer within {self._timeout:g} s"
            ) from None
        except requests.ConnectionError:
            raise ProviderError(
                FailureKind.UNREACHABLE, f"cannot connect to OpenWeather at {self._base}"
            ) from None
        except requests.RequestException as exc:
            raise ProviderError(
                FailureKind.UNREACHABLE,
                f"request to OpenWeather failed ({type(exc).__name__})",
            ) from None
        with response:
            return self._read(city, response)

    def _read(self, city: str, response: requests.Response) -> float:
        body = _json_object(response.text)
        status = response.status_code
        cod = str(body.get("cod", "")) if body is not None else ""
        if status == 200 and cod.isdigit() and cod != "200":
            status = int(cod)  # the service has been known to put the real code in the body
        said = self._message(body)
        if status == 200:
            return _main_temp(body)
        if status == 401:
            raise ProviderError(
                FailureKind.BAD_KEY, f"OpenWeather rejected the API key (401{said})"
            )
        if status == 404:
            raise ProviderError(
                FailureKind.UNKNOWN_CITY, f"OpenWeather does not know {city!r} (404{said})"
            )
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
            raise RateLimited(f"OpenWeather quota exceeded (429{said})", retry_after)
        if status == 400:
            raise ProviderError(
                FailureKind.BAD_REQUEST, f"OpenWeather refused the request (400{said})"
            )
        if status >= 500:
            raise ProviderError(FailureKind.SERVER_ERROR, f"OpenWeather failed ({status}{said})")
        raise ProviderError(
            FailureKind.SERVER_ERROR, f"unexpected answer {status} from OpenWeather{said}"
        )

    def _message(self, body: dict[str, Any] | None) -> str:
        message = body.get("message") if body is not None else None
        if not isinstance(message, str) or not message.strip():
            return ""
        text = " ".join(message.split())[:_MAX_MESSAGE]
        for secret in {self._key, quote(self._key, safe="")}:
            text = text.replace(secret, "***")
        return f": {text}"


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _main_temp(body: dict[str, Any] | None) -> float:
    if body is None:
        raise ProviderError(FailureKind.MALFORMED, "OpenWeather sent a body that is not JSON")
    main = body.get("main")
    temp = main.get("temp") if isinstance(main, dict) else None
    if isinstance(temp, bool) or not isinstance(temp, int | float):
        raise ProviderError(FailureKind.MALFORMED, "OpenWeather's answer has no main.temp")
    value = float(temp)
    low, high = _PLAUSIBLE_C
    if not math.isfinite(value) or not low < value < high:
        raise ProviderError(FailureKind.MALFORMED, f"OpenWeather sent main.temp={value:g} °C")
    return value


class SimulatedProvider:
    """Temperatures from a file the user edits while the office runs (offline).

    The file is re-read at each poll. A city's temperature is the file's value at the first
    poll after a change, then moves by its drift (or ``drift`` for cities without one)
    each poll, until the file changes again. A file that stops parsing keeps the last
    good values (and says so once).

    Args:
        path: the temperatures file (see :mod:`weather.files`).
        drift: degrees per poll for cities without their own drift.
    """

    name = "simulated"

    def __init__(self, path: Path, drift: float = 0.0) -> None:
        self._file = WatchedFile(path)
        self._drift = drift
        self._cities: dict[str, CitySpec] = {}
        self._steps: dict[str, int] = {}
        self._problem: str | None = None

    def start_poll(self) -> None:
        if not self._file.refresh():
            return
        if self._file.text is None:
            self._cities, self._steps = {}, {}
            self._problem = self._file.error
            log.warning("no simulated temperatures: %s", self._problem)
            return
        try:
            cities = parse_temperatures(self._file.text)
        except FileFormatError as exc:
            self._problem = f"{self._file.path}: {exc}"
            kept = "keeping the previous temperatures" if self._cities else "no temperatures"
            log.warning("cannot use the temperatures file: %s; %s", self._problem, kept)
            return
        self._cities, self._steps, self._problem = cities, {}, None
        log.info(
            "simulated temperatures loaded",
            extra={"fields": {"file": self._file.path, "cities": len(cities)}},
        )

    def temperature(self, city: str) -> float:
        if not self._cities and self._problem:
            raise ProviderError(FailureKind.NO_DATA, self._problem)
        spec = self._cities.get(city)
        if spec is None:
            raise ProviderError(
                FailureKind.UNKNOWN_CITY, f"no temperature for {city!r} in {self._file.path}"
            )
        step = self._steps.get(city, 0)
        self._steps[city] = step + 1
        drift = self._drift if spec.drift_c is None else spec.drift_c
        return round(spec.temperature_c + drift * step, 3)
