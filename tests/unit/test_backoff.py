"""common.backoff: the delays every retry loop waits, with each loop's own numbers."""

from __future__ import annotations

from common.backoff import Backoff, backoff_delay


def test_delays_double_from_the_first_up_to_the_cap() -> None:
    assert [backoff_delay(n, first=0.5, cap=5.0) for n in range(1, 8)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        5.0,
        5.0,
        5.0,
    ]


def test_an_attempt_below_one_counts_as_the_first() -> None:
    assert backoff_delay(0, first=1.0, cap=30.0) == 1.0
    assert backoff_delay(-3, first=1.0, cap=30.0) == 1.0


def test_another_factor() -> None:
    assert [backoff_delay(n, first=1.0, cap=100.0, factor=3.0) for n in (1, 2, 3, 5)] == [
        1.0,
        3.0,
        9.0,
        81.0,
    ]


def test_jitter_is_added_after_the_cap() -> None:
    asked: list[tuple[float, float]] = []

    def rand(low: float, high: float) -> float:
        asked.append((low, high))
        return high

    assert backoff_delay(10, first=0.5, cap=5.0, jitter=0.25, rand=rand) == 5.25
    assert asked == [(0.0, 0.25)]


def test_without_jitter_no_random_number_is_drawn() -> None:
    def rand(low: float, high: float) -> float:
        raise AssertionError("drew a random number")

    assert backoff_delay(2, first=0.5, cap=5.0, rand=rand) == 1.0


def test_real_jitter_stays_within_its_bounds() -> None:
    delays = [backoff_delay(1, first=0.5, cap=5.0, jitter=0.25) for _ in range(200)]
    assert all(0.5 <= d <= 0.75 for d in delays)
    assert len(set(delays)) > 1


def test_a_loop_that_failed_for_days_stays_at_the_cap() -> None:
    assert backoff_delay(5000, first=0.5, cap=5.0) == 5.0
    assert backoff_delay(10**6, first=1.0, cap=30.0) == 30.0


def test_backoff_walks_the_delays_and_starts_again_after_reset() -> None:
    backoff = Backoff(0.2, 10.0)
    assert [backoff.next() for _ in range(9)] == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next() == 0.2


def test_backoff_defaults_are_the_reconnect_loops() -> None:
    backoff = Backoff()
    assert [backoff.next() for _ in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
