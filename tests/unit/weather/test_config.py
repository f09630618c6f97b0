"""``ev-weather``'s command line: bad settings are one line and exit code 2; no key leaks."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from weather.__main__ import main
from weather.redaction import RedactingFilter, redact

KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the root logger; give the next test the one it had."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, "EV_WEATHER_TOKEN: not set"),
        ([], {"EV_OPERATOR_TOKEN": "t"}, "no longer takes EV_OPERATOR_TOKEN"),
        (["--provider", "openweather"], {"EV_WEATHER_TOKEN": "t"}, "EV_OPENWEATHER_API_KEY"),
        (["--provider", "metoffice"], {}, "--provider: 'metoffice': expected one of"),
        (["--interval", "0"], {}, "--interval: '0': must be greater than 0"),
        (["--hysteresis", "-1"], {}, "--hysteresis: '-1': must be 0 or more"),
        (["--central-api", "ftp://x"], {}, "--central-api"),
        ([], {"EV_WEATHER_INTERVAL": "soon"}, "EV_WEATHER_INTERVAL"),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    argv: list[str],
    env: dict[str, str],
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    for name in (
        "EV_OPERATOR_TOKEN",
        "EV_WEATHER_TOKEN",
        "EV_OPENWEATHER_API_KEY",
        "EV_WEATHER_INTERVAL",
    ):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"{name}_FILE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "--no-menu", "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ev-weather: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_redact_covers_raw_and_url_encoded_forms() -> None:
    assert redact(f"GET /w?appid={KEY}&q=Oslo", [KEY]) == "GET /w?appid=***&q=Oslo"
    assert redact("key=a+b%2Fc", ["a b/c"]) == "key=***"


def test_filter_scrubs_messages_args_fields_and_tracebacks() -> None:
    record = logging.LogRecord("urllib3", logging.DEBUG, __file__, 1, "GET %s", (KEY,), None)
    record.fields = {"url": f"http://x/?appid={KEY}", "n": 3}
    try:
        raise RuntimeError(f"failed: {KEY}")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter([KEY]).filter(record)
    assert record.getMessage() == "GET ***"
    fields = record.__dict__["fields"]
    assert fields == {"url": "http://x/?appid=***", "n": 3, "exc": fields["exc"]}
    assert KEY not in fields["exc"] and "RuntimeError" in fields["exc"]
    assert record.exc_info is None
