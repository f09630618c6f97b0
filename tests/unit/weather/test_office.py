"""The office loop with a fake provider, a fake API_Central and a fixed clock."""

from __future__ import annotations

import itertools
import logging

import pytest

from tests.support.clock import FakeClock
from tests.unit.weather.fakes import FakeCentral, FakeProvider
from weather.app import WeatherOffice
from weather.decision import Status
from weather.errors import FailureKind, ProviderError, RateLimited
from weather.locations import LocationBook


def office(
    provider: FakeProvider, central: FakeCentral, *cities: str, clock: FakeClock | None = None
) -> WeatherOffice:
    return WeatherOffice(
        provider,
        central,
        LocationBook(initial=cities or ("Oslo",)),
        hysteresis=1.0,
        interval=4.0,
        max_backoff=60.0,
        clock=clock or FakeClock(),
    )


def test_cold_raises_once_the_band_holds_and_warm_clears() -> None:
    provider, central = FakeProvider(Oslo=-5.0), FakeCentral()
    wx = office(provider, central)
    wx.poll()
    assert central.calls == [("raise", "Oslo"), ("reading", "Oslo")]  # alert first
    assert central.readings == [("Oslo", -5.0, "ok", None)]
    wx.poll()
    for temperature in (-0.5, 0.0, 0.8, 1.0):
        provider.answers["Oslo"] = temperature
        wx.poll()
    assert central.commands() == [("raise", "Oslo")]
    provider.answers["Oslo"] = 1.1
    wx.poll()
    assert central.commands() == [("raise", "Oslo"), ("clear", "Oslo")]
    assert central.alerts == set()
    assert [r[1] for r in central.readings] == [-5.0, -5.0, -0.5, 0.0, 0.8, 1.0, 1.1]


FAILURES = [
    ProviderError(FailureKind.TIMEOUT, "OpenWeather did not answer within 5 s"),
    ProviderError(FailureKind.BAD_KEY, "OpenWeather rejected the API key (401)"),
    ProviderError(FailureKind.UNKNOWN_CITY, "OpenWeather does not know 'Oslo' (404)"),
    ProviderError(FailureKind.MALFORMED, "OpenWeather sent a body that is not JSON"),
    ProviderError(FailureKind.UNREACHABLE, "cannot connect to OpenWeather"),
    RateLimited("OpenWeather quota exceeded (429)", 0.0),
]


@pytest.mark.parametrize("failure", FAILURES, ids=lambda e: e.kind)
@pytest.mark.parametrize("before", [-5.0, 5.0], ids=["alert", "ok"])
def test_a_failure_reports_unknown_and_never_changes_the_alert(
    failure: ProviderError, before: float
) -> None:
    provider, central = FakeProvider(Oslo=before), FakeCentral()
    wx = office(provider, central)
    wx.poll()
    commands = central.commands()
    provider.answers["Oslo"] = failure
    wx.poll()
    wx.poll()
    assert central.commands() == commands  # nothing raised, nothing cleared
    location, temperature, status, reason = central.readings[-1]
    assert (location, temperature, status) == ("Oslo", None, "UNKNOWN")
    assert reason is not None and failure.reason in reason
    row = wx.snapshot()[0]
    assert row["status"] == "UNKNOWN" and row["alert"] is (before < 0) and row["delivered"]


def test_undelivered_alert_is_retried_until_central_confirms(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider, central = FakeProvider(Oslo=-5.0, Madrid=12.0), FakeCentral(down=True)
    wx = office(provider, central, "Oslo", "Madrid")
    with caplog.at_level(logging.INFO, logger="weather"):
        wx.poll()
        provider.answers["Oslo"] = ProviderError(FailureKind.TIMEOUT, "slow")  # data lost...
        wx.poll()
        wx.poll()
    assert central.calls == []
    assert wx.snapshot()[0]["delivered"] is False
    outage = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(outage) == 1, "one line per outage, not one per poll"
    assert outage[0].levelno == logging.WARNING and not outage[0].exc_info
    assert "pending_alert_changes" in outage[0].fields  # type: ignore[attr-defined]
    caplog.clear()
    central.down = False
    with caplog.at_level(logging.INFO, logger="weather"):
        wx.poll()
    # ...but the alert decided while Central was down is delivered now.
    assert ("raise", "Oslo") in central.calls and central.alerts == {"Oslo"}
    assert central.raised_at == {"Oslo": -5.0}  # the reading that decided it
    assert ("Oslo", None, "UNKNOWN", "slow") in central.readings
    assert wx.snapshot()[0]["delivered"] is True
    assert any("reachable again" in r.getMessage() for r in caplog.records)


def test_a_clear_that_failed_is_retried_too() -> None:
    provider, central = FakeProvider(Oslo=-5.0), FakeCentral()
    wx = office(provider, central)
    wx.poll()
    central.down = True
    provider.answers["Oslo"] = 6.0
    wx.poll()
    central.down = False
    provider.answers["Oslo"] = ProviderError(FailureKind.TIMEOUT, "slow")
    wx.poll()
    assert central.commands() == [("raise", "Oslo"), ("clear", "Oslo")]


def test_retry_after_is_respected_for_that_location() -> None:
    clock = FakeClock()
    provider = FakeProvider(Oslo=RateLimited("OpenWeather quota exceeded (429)", 30.0), Rome=9.0)
    central = FakeCentral()
    wx = office(provider, central, "Oslo", "Rome", clock=clock)
    wx.poll()
    provider.answers["Oslo"] = -3.0
    for _ in range(7):  # 28 s of polls: Oslo is not asked again, Rome is
        clock.now += 4.0
        wx.poll()
    assert provider.calls.count("Oslo") == 1 and provider.calls.count("Rome") == 8
    oslo = [r for r in central.readings if r[0] == "Oslo"]
    assert {r[2] for r in oslo} == {"UNKNOWN"}
    assert "429" in str(oslo[-1][3]) and "next try in 30 s" in str(oslo[-1][3])
    clock.now += 4.0
    wx.poll()
    assert provider.calls.count("Oslo") == 2
    assert central.commands() == [("clear", "Rome"), ("raise", "Oslo")]


def test_without_retry_after_the_back_off_doubles_up_to_the_cap() -> None:
    clock = FakeClock()
    provider = FakeProvider(Oslo=RateLimited("OpenWeather quota exceeded (429)", None))
    wx = office(provider, FakeCentral(), clock=clock)
    asked_at = []
    for _ in range(200):
        before = len(provider.calls)
        wx.poll()
        if len(provider.calls) > before:
            asked_at.append(clock.now - 1000.0)
        clock.now += 1.0
    gaps = [b - a for a, b in itertools.pairwise(asked_at)]
    assert gaps == [4.0, 8.0, 16.0, 32.0, 60.0, 60.0]  # capped at max_backoff
    provider.answers["Oslo"] = 3.0
    clock.now += 60.0
    wx.poll()
    state = wx.state("Oslo")
    assert state is not None and state.rate_limited == 0 and state.verdict.status is Status.OK


def test_a_refusal_is_logged_once_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    provider = FakeProvider(Oslo=-5.0)
    central = FakeCentral(reject="API_Central refused POST /weather/alerts (401: token)")
    wx = office(provider, central)
    with caplog.at_level(logging.INFO, logger="weather"):
        for _ in range(3):
            wx.poll()
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and refusals[0].levelno == logging.ERROR
    central.reject = None
    wx.poll()
    assert central.commands() == [("raise", "Oslo")]


def test_a_new_location_inside_the_band_sends_no_command() -> None:
    provider, central = FakeProvider(Oslo=0.5), FakeCentral(alerts={"Oslo"})
    wx = office(provider, central)
    wx.poll()
    assert central.commands() == []  # an alert kept from before a restart stays
    assert central.readings == [("Oslo", 0.5, "ok", None)]
    provider.answers["Oslo"] = 1.5
    wx.poll()
    assert central.commands() == [("clear", "Oslo")]


def test_locations_added_and_removed_while_running(caplog: pytest.LogCaptureFixture) -> None:
    provider, central = FakeProvider(Oslo=-5.0, Rome=10.0), FakeCentral()
    wx = office(provider, central)
    wx.poll()
    wx.book.add("Rome")
    wx.poll()
    assert provider.calls == ["Oslo", "Oslo", "Rome"]
    with caplog.at_level(logging.WARNING, logger="weather"):
        wx.book.remove("Oslo")
        wx.poll()
    assert provider.calls[-1] == "Rome" and provider.calls.count("Oslo") == 2
    assert [r["location"] for r in wx.snapshot()] == ["Rome"]
    assert any("alert stays" in r.getMessage() for r in caplog.records)
    assert central.alerts == {"Oslo"}  # not cleared without a warm reading


def test_an_unexpected_provider_bug_is_unknown_not_a_crash() -> None:
    provider, central = FakeProvider(Oslo=ZeroDivisionError()), FakeCentral()
    wx = office(provider, central)
    wx.poll()
    assert central.readings == [("Oslo", None, "UNKNOWN", "internal error (ZeroDivisionError)")]


def test_run_polls_every_interval_with_the_injected_wait() -> None:
    clock = FakeClock()
    provider = FakeProvider(Oslo=3.0)
    wx = office(provider, FakeCentral(), clock=clock)
    waits: list[float] = []

    def wait(seconds: float) -> bool:
        waits.append(seconds)
        clock.now += seconds
        return len(waits) == 3

    original = provider.temperature

    def slow(city: str) -> float:
        clock.now += 1.5  # each poll takes 1.5 s
        return original(city)

    provider.temperature = slow  # type: ignore[method-assign]
    wx.run(wait)
    assert waits == [2.5, 2.5, 2.5] and provider.polls == 3
