"""Back-off delays for every retry and reconnect loop: capped exponential, optional jitter.

Each loop keeps its own numbers (first delay, cap, jitter) and asks here for the next
wait: ``first``, ``first * factor``, ``first * factor**2`` ... never above ``cap``, plus
up to ``jitter`` seconds at random so that many clients cut off together do not all
come back in the same instant.

Hand-written rather than tenacity's retry loop: the waits here must be cut short by
events (a new session key, a user command, a stop request), so the loops own their
sleeping and only need the next delay. (The driver's tenacity loop asks here too.)
"""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff", "backoff_delay"]


def backoff_delay(
    attempt: int,
    *,
    first: float,
    cap: float,
    factor: float = 2.0,
    jitter: float = 0.0,
    rand: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Args:
        attempt: 1, 2, 3 ...; anything below 1 counts as 1.
        first: the first delay.
        cap: the longest delay, before jitter.
        factor: how much each delay grows over the one before.
        jitter: up to this many seconds added at random (after the cap).
        rand: ``random.uniform`` or, in tests, a fixed stand-in.
    """
    try:
        delay = min(cap, first * factor ** max(attempt - 1, 0))
    except OverflowError:  # a loop that has failed a thousand times: long since at the cap
        delay = cap
    if jitter > 0:
        delay += rand(0.0, jitter)
    return float(delay)


class Backoff:
    """The delays of one loop in turn: :meth:`next` after a failure, :meth:`reset` after success.

    Args:
        first, cap, factor, jitter: as for :func:`backoff_delay`.
    """

    def __init__(
        self, first: float = 0.5, cap: float = 5.0, factor: float = 2.0, jitter: float = 0.0
    ) -> None:
        self.first = first
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self._attempt = 0

    def next(self) -> float:
        self._attempt += 1
        return backoff_delay(
            self._attempt, first=self.first, cap=self.cap, factor=self.factor, jitter=self.jitter
        )

    def reset(self) -> None:
        self._attempt = 0
