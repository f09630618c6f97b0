"""CentralLink: bounded retries with back-off, errors translated (a fake connector)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from common.client import AuthenticationFailed, AuthenticationThrottled, CentralUnreachable
from common.config import HostPort
from driver.errors import CentralDown, NotAuthenticated
from driver.link import CentralLink

ADDR = HostPort("127.0.0.1", 7000)


class FlakyCentral:
    """Fails ``failures`` times with ``error``, then hands out a link."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or CentralUnreachable(f"Cannot reach Central at {ADDR}: refused")
        self.calls: list[tuple[Any, ...]] = []

    async def __call__(self, addr: HostPort, role: Any, principal: str, **kw: Any) -> Any:
        self.calls.append((addr, role, principal, kw))
        if len(self.calls) <= self.failures:
            raise self.error
        return object()


def make(
    connector: FlakyCentral, retry_for: float, sleeps: list[float] | None = None
) -> tuple[CentralLink, list[str]]:
    notes: list[str] = []

    async def fake_sleep(seconds: float) -> None:
        assert sleeps is not None
        sleeps.append(seconds)

    link = CentralLink(
        ADDR,
        "D1",
        "s3cret",
        retry_for=retry_for,
        notify=notes.append,
        connector=connector,  # type: ignore[arg-type]
        sleep=fake_sleep if sleeps is not None else asyncio.sleep,
    )
    return link, notes


def test_retries_with_growing_back_off_until_central_answers() -> None:
    central, sleeps = FlakyCentral(failures=4), list[float]()
    link, notes = make(central, retry_for=60, sleeps=sleeps)
    asyncio.run(link.open())
    assert len(central.calls) == 5
    assert central.calls[0][2:] == ("D1", {"secret": "s3cret"})
    assert len(sleeps) == 4 and sleeps == sorted(sleeps) and sleeps[0] <= 0.75
    assert all(s <= 5.25 for s in sleeps)
    assert notes[0].startswith("Cannot reach Central at 127.0.0.1:7000: refused; retrying in ")


def test_gives_up_when_the_budget_is_spent() -> None:
    central = FlakyCentral(failures=10**6)
    link, notes = make(central, retry_for=0.3)
    started = time.monotonic()
    with pytest.raises(CentralDown) as caught:
        asyncio.run(link.open())
    assert time.monotonic() - started < 1.5  # no sleep past the budget
    assert str(caught.value) == (
        "Cannot reach Central at 127.0.0.1:7000: refused; gave up after 0.3 s"
    )
    assert caught.value.exit_code == 3 and notes


def test_retry_for_zero_tries_once() -> None:
    central = FlakyCentral(failures=1)
    link, notes = make(central, retry_for=0, sleeps=[])
    with pytest.raises(CentralDown, match=r"refused$"):
        asyncio.run(link.open())
    assert len(central.calls) == 1 and notes == []


def test_a_refused_secret_is_never_retried() -> None:
    central = FlakyCentral(failures=1, error=AuthenticationFailed("no"))
    link, _ = make(central, retry_for=60, sleeps=[])
    with pytest.raises(NotAuthenticated) as caught:
        asyncio.run(link.open())
    assert str(caught.value) == "Central refused driver D1: wrong secret, or no such driver"
    assert caught.value.exit_code == 4 and len(central.calls) == 1


def test_a_throttled_login_says_when_to_try_again() -> None:
    delayed = AuthenticationThrottled("delayed", retry_after=12)
    central = FlakyCentral(failures=1, error=delayed)
    link, notes = make(central, retry_for=60, sleeps=[])
    with pytest.raises(NotAuthenticated) as caught:
        asyncio.run(link.open())
    assert str(caught.value) == (
        "Central is delaying logins for D1 after failed attempts; try again in 12 s"
    )
    assert caught.value.exit_code == 4 and len(central.calls) == 1 and notes == []
