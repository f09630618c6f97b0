"""Small pure parts of the dashboard: settings, charts, login throttle, redirects, filters."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import HostPort
from common.errors import ConfigError
from tests.support.clock import FakeClock
from web_ui.audit import audit_filters
from web_ui.charts import bar_chart
from web_ui.operator import validate_registration
from web_ui.revenue import ticket_filters
from web_ui.security import LoginThrottle, OperatorSessions, safe_next
from web_ui.settings import parse_settings


def test_settings_from_flags_and_environment(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {
        "EV_CENTRAL_API": "http://central:8001/",
        "EV_KAFKA_BOOTSTRAP": "kafka:9092",
        "EV_OPERATOR_TOKEN": "tok",
        "EV_REGISTRY_CA": str(ca),
    }
    settings = parse_settings(
        ["--listen", "127.0.0.1:0", "--registry-url", "https://reg:8443"], env
    )
    assert settings.listen == HostPort("127.0.0.1", 0)
    assert settings.central_api == "http://central:8001"
    assert settings.kafka_bootstrap == "kafka:9092" and settings.registry_ca == ca
    assert settings.operator_token == "tok" and settings.registry_token == "tok"
    assert "tok" not in repr(settings) and settings.secret_key not in repr(settings)
    defaults = parse_settings([], {})
    assert defaults.listen == HostPort("0.0.0.0", 8000) and defaults.operator_token is None
    assert defaults.kafka_bootstrap is None and len(defaults.secret_key) >= 32


@pytest.mark.parametrize(
    ("argv", "env", "setting"),
    [
        (["--listen", "nope"], {}, "--listen"),
        (["--central-api", "ftp://x"], {}, "--central-api"),
        (["--registry-url", "http://reg:8443"], {}, "--registry-url"),
        (["--registry-ca", "/no/such/ca.pem"], {}, "--registry-ca"),
        (["--threads", "2"], {}, "--threads"),
        ([], {"EV_WEB_SECRET_KEY": "short"}, "EV_WEB_SECRET_KEY"),
        ([], {"EV_WEB_RESYNC_INTERVAL": "-1"}, "EV_WEB_RESYNC_INTERVAL"),
    ],
)
def test_bad_settings_name_what_to_fix(argv: list[str], env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(argv, env)
    assert caught.value.setting == setting


def test_bar_chart_scales_to_the_largest_value() -> None:
    chart = bar_chart([("CP1", 10.0), ("CP2", 5.0), ("CP3", 0.0)], title="Revenue", unit="€")
    widths = [bar.width for bar in chart.bars]
    assert widths[0] == 2 * widths[1] and widths[2] == 0
    assert widths[0] + chart.label_width < chart.width  # room left for the value text
    assert [bar.text for bar in chart.bars] == ["10.00 €", "5.00 €", "0.00 €"]
    assert chart.description == "CP1: 10.00 €; CP2: 5.00 €; CP3: 0.00 €"
    ys = [bar.y for bar in chart.bars]
    assert ys == sorted(ys) and chart.height > ys[-1] + chart.bar_height
    empty = bar_chart([], title="Energy", unit="kWh")
    assert empty.empty and empty.description == "no data yet" and empty.height > 0
    zeros = bar_chart([("d", 0.0)], title="Energy", unit="kWh")
    assert zeros.bars[0].width == 0


def test_login_throttle_window_slides() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(limit=3, window=60, clock=clock)
    for _ in range(3):
        assert throttle.retry_after("1.2.3.4") == 0
        throttle.failed("1.2.3.4")
    assert throttle.retry_after("1.2.3.4") == 60
    assert throttle.retry_after("5.6.7.8") == 0  # others are not affected
    clock.advance(30)
    assert throttle.retry_after("1.2.3.4") == 30
    clock.advance(30)
    assert throttle.retry_after("1.2.3.4") == 0
    throttle.failed("1.2.3.4")
    throttle.succeeded("1.2.3.4")
    assert throttle.retry_after("1.2.3.4") == 0


def test_operator_sessions_end_on_logout_expiry_or_overflow() -> None:
    clock = FakeClock()
    sessions = OperatorSessions(lifetime=60, limit=2, clock=clock)
    first = sessions.start()
    assert sessions.valid(first) and not sessions.valid("forged")
    sessions.end(first)
    assert not sessions.valid(first)  # logged out: gone for good
    second, third = sessions.start(), sessions.start()
    fourth = sessions.start()  # past the limit: the oldest goes
    assert not sessions.valid(second) and sessions.valid(third) and sessions.valid(fourth)
    clock.advance(60)
    assert not sessions.valid(third) and len(sessions) == 1


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/audit?actor=x", "/audit?actor=x"),
        (None, "/operator"),
        ("https://evil.example/", "/operator"),
        ("//evil.example", "/operator"),
        ("/\\evil.example", "/operator"),
        ("javascript:alert(1)", "/operator"),
        ("audit", "/operator"),
    ],
)
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target, "/operator") == expected


def test_form_filters() -> None:
    filters, errors = audit_filters(
        {"actor": " operator ", "since": "2026-11-21T10:00", "until": "2026-11-21T11:00:30"}
    )
    assert errors == []
    assert filters == {
        "actor": "operator",
        "since": "2026-11-21T10:00:00+00:00",
        "until": "2026-11-21T11:00:30+00:00",
    }
    _, errors = audit_filters({"actor": "<script>", "until": "soon"})
    assert len(errors) == 2
    filters, errors = ticket_filters({"status": "", "cp_id": "CP1"})
    assert filters == {"status": "", "limit": 100, "cp_id": "CP1"} and not errors


@pytest.mark.parametrize(
    ("form", "bad"),
    [
        ({"id": "CP-1_a", "location": "Madrid", "price": ""}, set()),
        ({"id": "CP1", "location": "Madrid", "price": "0.3456"}, set()),
        ({"id": "", "location": "Madrid"}, {"id"}),
        ({"id": "x" * 33, "location": "Madrid"}, {"id"}),
        ({"id": "CP1", "location": "M" * 65}, {"location"}),
        ({"id": "CP1", "location": "Ma\x00drid"}, {"location"}),
        ({"id": "CP1", "location": "Madrid", "price": "101"}, {"price"}),
        ({"id": "CP1", "location": "Madrid", "price": "0.12345"}, {"price"}),
        ({"id": "CP1", "location": "Madrid", "price": "NaN"}, {"price"}),
        ({"id": "CP1", "location": "Madrid", "price": "abc"}, {"price"}),
    ],
)
def test_registration_form_rules(form: dict[str, str], bad: set[str]) -> None:
    _, errors = validate_registration(form)
    assert set(errors) == bad
