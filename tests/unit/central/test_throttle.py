"""The login throttle, on a fake clock: free failures, growing delays, two scopes, memory."""

from __future__ import annotations

import pytest

from central.throttle import Key, LoginThrottle, login_keys
from tests.support.clock import FakeClock

MONITOR = login_keys("monitor", "CP1", "10.0.0.7")
ID, IP = MONITOR


def fail(throttle: LoginThrottle, times: int, keys: tuple[Key, ...] = MONITOR) -> None:
    for _ in range(times):
        throttle.failed(keys)


def test_login_keys_carry_the_role() -> None:
    assert login_keys("driver", "CP1", "::1") == (("id", "driver:CP1"), ("ip", "::1"))


def test_failures_within_the_allowance_cost_nothing() -> None:
    throttle = LoginThrottle(FakeClock(), id_free=3)
    fail(throttle, 2)
    assert throttle.wait(MONITOR) == 0
    assert throttle.wait([ID]) == 0


def test_the_delay_doubles_then_stops_at_the_cap() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, id_free=3, ip_free=100, base=1.0, cap=10.0)
    fail(throttle, 2)
    delays = []
    for _ in range(6):
        throttle.failed(MONITOR)
        delays.append(throttle.wait(MONITOR))
    assert delays == [1, 2, 4, 8, 10, 10]


def test_the_delay_runs_from_the_last_failure_and_rounds_up() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, id_free=1, base=4.0, cap=60.0)
    throttle.failed([ID])
    assert throttle.wait([ID]) == 4
    clock.now += 2.5
    assert throttle.wait([ID]) == 2  # 1.5 s left, rounded up
    clock.now += 1.5
    assert throttle.wait([ID]) == 0  # a proof may go now ...
    throttle.failed([ID])
    assert throttle.wait([ID]) == 8  # ... and its failure waits twice as long


def test_asking_reserves_nothing() -> None:
    throttle = LoginThrottle(FakeClock(), id_free=1)
    for _ in range(100):  # pending handshakes: they ask, they never fail
        assert throttle.wait(MONITOR) == 0
    assert len(throttle) == 0


def test_the_longest_wait_of_the_keys_wins() -> None:
    throttle = LoginThrottle(FakeClock(), id_free=1, ip_free=2, base=1.0)
    fail(throttle, 3)  # id: 3 failures, free 1 -> 4 s; ip: 3, free 2 -> 2 s
    assert throttle.wait([ID]) == 4 and throttle.wait([IP]) == 2
    assert throttle.wait(MONITOR) == 4


def test_id_and_address_scopes_count_separately() -> None:
    throttle = LoginThrottle(FakeClock(), id_free=3, ip_free=5)
    for n in range(5):  # five ids, one address
        throttle.failed(login_keys("driver", f"D{n}", "10.0.0.9"))
    assert throttle.wait([("ip", "10.0.0.9")]) == 1
    assert throttle.wait([("id", "driver:D0")]) == 0
    # The same id from elsewhere is not delayed by that address.
    assert throttle.wait(login_keys("driver", "D0", "10.0.0.10")) == 0
    fail(throttle, 3, login_keys("monitor", "CP1", "192.0.2.1"))
    assert throttle.wait(login_keys("monitor", "CP1", "192.0.2.2")) == 1  # id-wide


def test_the_role_is_part_of_the_id() -> None:
    throttle = LoginThrottle(FakeClock(), id_free=3)
    fail(throttle, 10, login_keys("driver", "CP1", "198.51.100.1"))
    assert throttle.wait(login_keys("driver", "CP1", "10.0.0.7")) > 0
    assert throttle.wait(login_keys("monitor", "CP1", "10.0.0.7")) == 0


def test_success_resets_the_id_not_the_address() -> None:
    throttle = LoginThrottle(FakeClock(), id_free=3, ip_free=3)
    fail(throttle, 5)
    assert throttle.wait([ID]) == 4 and throttle.wait([IP]) == 4
    throttle.succeeded(MONITOR)
    assert throttle.wait([ID]) == 0
    assert throttle.wait([IP]) == 4
    throttle.failed(MONITOR)  # counting starts over for the id, not for the address
    assert throttle.wait([ID]) == 0 and throttle.wait([IP]) == 8


def test_old_failures_are_forgotten() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, id_free=3, cap=60.0, forget=900.0)
    fail(throttle, 6)
    clock.now += 900.0
    throttle.failed(MONITOR)  # still within forget: the count goes on
    assert throttle.wait(MONITOR) == 16
    clock.now += 900.5
    assert throttle.wait(MONITOR) == 0
    throttle.failed(MONITOR)  # forgotten: a first failure again
    assert throttle.wait(MONITOR) == 0


def test_a_stale_key_is_forgotten_even_between_sweeps() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, id_free=3, cap=60.0, forget=100.0)
    clock.now += 5
    fail(throttle, 6)
    clock.now += 99
    assert throttle.wait([]) == 0  # a sweep runs now; the failures are 99 s old
    clock.now += 2  # 101 s old; the next sweep is 8 s away
    throttle.failed(MONITOR)
    assert throttle.wait(MONITOR) == 0  # a first failure, not the seventh


def test_idle_keys_are_swept_at_most_every_tenth_of_forget() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, id_free=3, cap=60.0, forget=100.0)
    throttle.failed(login_keys("driver", "old", "10.0.0.1"))
    clock.now += 5
    throttle.failed(login_keys("driver", "mid", "10.0.0.2"))
    assert len(throttle) == 4
    clock.now += 96  # "old" is past forget, "mid" is not; no sweep for 101 s
    assert throttle.wait([]) == 0  # asks about no key: only a sweep can drop one
    assert len(throttle) == 2
    clock.now += 5  # "mid" is past forget too, but the last sweep was 5 s ago
    assert throttle.wait([]) == 0 and len(throttle) == 2
    clock.now += 5.5  # 10.5 s since the last sweep
    assert throttle.wait([]) == 0 and len(throttle) == 0


def test_memory_is_capped_by_dropping_the_oldest_key() -> None:
    clock = FakeClock()
    throttle = LoginThrottle(clock, id_free=1, ip_free=60, max_keys=10)
    attacker = ("ip", "203.0.113.5")
    for n in range(50):  # an id spray from one address
        clock.now += 1
        throttle.failed([("id", f"driver:X{n}"), attacker])
    assert len(throttle) == 10
    assert throttle.wait([("id", "driver:X0")]) == 0  # dropped
    assert throttle.wait([("id", "driver:X49")]) > 0  # kept
    # The sprayer's address, failing all along, was never dropped: its 50 failures
    # still count, so 10 more reach its allowance of 60.
    assert throttle.wait([attacker]) == 0
    fail(throttle, 10, (attacker,))
    assert throttle.wait([attacker]) == 1


def test_unknown_scope_is_refused() -> None:
    throttle = LoginThrottle(FakeClock())
    with pytest.raises(ValueError, match="scope"):
        throttle.failed([("user", "x")])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id_free": 0},
        {"ip_free": 0},
        {"base": 0.0},
        {"base": 10.0, "cap": 5.0},
        {"cap": 60.0, "forget": 30.0},
        {"max_keys": 0},
    ],
)
def test_nonsense_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        LoginThrottle(FakeClock(), **kwargs)  # type: ignore[arg-type]
