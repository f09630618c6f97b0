"""The failure limiter, on a fake clock: windows slide, lock-outs are reported once."""

from __future__ import annotations

import pytest

from common.ratelimit import FailureLimiter, Lockout
from tests.support.clock import FakeClock

ID = ("id", "CP1")
IP = ("ip", "10.0.0.7")


def fail(limiter: FailureLimiter, *keys: tuple[str, str]) -> list[Lockout]:
    attempt = limiter.begin(keys)
    assert attempt.allowed
    return limiter.end(attempt, failed=True)


def test_locks_after_limit_and_reports_the_lockout_once() -> None:
    clock = FakeClock()
    limiter = FailureLimiter({"id": 3, "ip": 10}, 60, clock)
    assert fail(limiter, ID, IP) == []
    clock.now += 1
    assert fail(limiter, ID, IP) == []
    clock.now += 1
    assert fail(limiter, ID, IP) == [Lockout("id", "CP1", 3, 58)]
    refused = limiter.begin([ID, IP])
    assert not refused.allowed and refused.retry_after == 58
    assert limiter.end(refused, failed=True) == []  # a refused attempt counts for nothing
    assert limiter.retry_after(ID) == 58 and limiter.retry_after(IP) == 0


def test_window_slides_one_failure_at_a_time() -> None:
    clock = FakeClock()
    limiter = FailureLimiter({"id": 2}, 60, clock)
    fail(limiter, ID)
    clock.now += 30
    fail(limiter, ID)
    clock.now += 29.5
    assert limiter.begin([ID]).retry_after == 1  # rounded up, never 0
    clock.now += 0.5  # the first failure leaves the window: one more try
    attempt = limiter.begin([ID])
    assert attempt.allowed
    assert limiter.end(attempt, failed=True) == [Lockout("id", "CP1", 2, 30)]
    clock.now += 30
    assert limiter.begin([ID]).allowed


def test_successes_do_not_count() -> None:
    limiter = FailureLimiter({"id": 1}, 60, FakeClock())
    for _ in range(10):
        attempt = limiter.begin([ID])
        assert attempt.allowed
        assert limiter.end(attempt, failed=False) == []
    assert limiter.retry_after(ID) == 0


def test_pending_attempts_hold_their_slot() -> None:
    """Threads racing for the last slot cannot all get through."""
    limiter = FailureLimiter({"id": 2}, 60, FakeClock())
    first, second = limiter.begin([ID]), limiter.begin([ID])
    assert first.allowed and second.allowed
    assert not limiter.begin([ID]).allowed
    limiter.end(first, failed=False)
    assert limiter.begin([ID]).allowed


def test_keys_are_independent_but_a_full_key_blocks_the_attempt() -> None:
    limiter = FailureLimiter({"id": 5, "ip": 2}, 60, FakeClock())
    fail(limiter, ("id", "A"), IP)
    assert fail(limiter, ("id", "B"), IP) == [Lockout("ip", "10.0.0.7", 2, 60)]
    blocked = limiter.begin([("id", "C"), IP])  # a fresh id, from the locked address
    assert not blocked.allowed
    assert limiter.begin([("id", "C"), ("ip", "10.0.0.8")]).allowed


def test_idle_keys_are_forgotten() -> None:
    clock = FakeClock()
    limiter = FailureLimiter({"id": 5}, 60, clock)
    for n in range(100):
        fail(limiter, ("id", f"CP{n}"))
    assert len(limiter) == 100
    clock.now += 61
    limiter.begin([ID])  # sweeps, then reserves ID
    assert len(limiter) == 1


@pytest.mark.parametrize(("limits", "window"), [({"id": 0}, 60), ({"id": 1}, 0)])
def test_nonsense_configuration_is_refused(limits: dict[str, int], window: float) -> None:
    with pytest.raises(ValueError):
        FailureLimiter(limits, window)
