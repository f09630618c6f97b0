"""Failed-attempt limiting: a sliding window of failures per key, with a clock you pass in.

A key is ``(scope, value)``, for example ``("id", "CP1")`` or ``("ip", "10.0.0.7")``;
each scope has its own limit. An attempt first *reserves* a slot in every key it
touches (:meth:`FailureLimiter.begin`) and then reports how it went
(:meth:`FailureLimiter.end`). A reservation counts against the limit until it ends,
so N threads racing on the last free slot cannot all get through.

The state lives in this process; several replicas would each count separately and need
a shared store. Used by the Registry's ``/api/verify``. Central's logins use
:mod:`central.throttle` instead: growing delays after completed failures only, because
a reservation held by a handshake that never sends a proof would let anyone keep a CP out.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Attempt", "FailureLimiter", "Key", "Lockout"]

Key = tuple[str, str]


@dataclass(frozen=True)
class Lockout:
    """A key that has just reached its limit: it refuses attempts for ``retry_after`` s."""

    scope: str
    value: str
    failures: int
    retry_after: int


@dataclass
class _Window:
    failures: deque[float] = field(default_factory=deque)
    pending: int = 0


@dataclass(frozen=True)
class Attempt:
    """What :meth:`FailureLimiter.begin` decided: go ahead, or wait ``retry_after`` s."""

    keys: tuple[Key, ...]
    allowed: bool
    retry_after: int = 0


class FailureLimiter:
    """At most ``limits[scope]`` failures per key of that scope in any ``window`` seconds.

    Args:
        limits: failures allowed per key, by scope (``{"id": 5, "ip": 20}``).
        window: length of the sliding window in seconds.
        clock: monotonic time in seconds (tests pass a fake).
    """

    def __init__(
        self,
        limits: Mapping[str, int],
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window <= 0 or any(limit < 1 for limit in limits.values()):
            raise ValueError("limits must be >= 1 and the window > 0")
        self._limits = dict(limits)
        self._window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[Key, _Window] = {}
        self._last_sweep = clock()

    def begin(self, keys: Sequence[Key]) -> Attempt:
        """Reserve a slot in every key, or none if any key is full.

        Returns an :class:`Attempt`; when ``allowed`` the caller must :meth:`end` it.
        """
        keys = tuple(keys)
        with self._lock:
            now = self._clock()
            self._maybe_sweep(now)
            wait = 0.0
            for key in keys:
                win = self._keys.get(key)
                if win is None:
                    continue
                self._prune(win, now)
                if len(win.failures) + win.pending >= self._limit(key):
                    wait = max(wait, self._retry_after(win, now))
            if wait > 0:
                return Attempt(keys, allowed=False, retry_after=math.ceil(wait))
            for key in keys:
                self._keys.setdefault(key, _Window()).pending += 1
            return Attempt(keys, allowed=True)

    def end(self, attempt: Attempt, *, failed: bool) -> list[Lockout]:
        """Release the reservation; on failure count it and return keys it just locked."""
        if not attempt.allowed:
            return []
        locked: list[Lockout] = []
        with self._lock:
            now = self._clock()
            for key in attempt.keys:
                win = self._keys.setdefault(key, _Window())
                win.pending = max(0, win.pending - 1)
                if not failed:
                    continue
                self._prune(win, now)
                win.failures.append(now)
                limit = self._limit(key)
                if len(win.failures) == limit:
                    retry = math.ceil(self._retry_after(win, now))
                    locked.append(Lockout(key[0], key[1], limit, retry))
        return locked

    def retry_after(self, key: Key) -> int:
        """Seconds until ``key`` accepts an attempt again (0: it does now)."""
        with self._lock:
            win = self._keys.get(key)
            if win is None:
                return 0
            now = self._clock()
            self._prune(win, now)
            if len(win.failures) + win.pending < self._limit(key):
                return 0
            return math.ceil(self._retry_after(win, now))

    def __len__(self) -> int:
        """Number of keys currently tracked (bounded by recent failures)."""
        with self._lock:
            return len(self._keys)

    def _limit(self, key: Key) -> int:
        return self._limits[key[0]]

    def _prune(self, win: _Window, now: float) -> None:
        horizon = now - self._window
        while win.failures and win.failures[0] <= horizon:
            win.failures.popleft()

    def _retry_after(self, win: _Window, now: float) -> float:
        # When the oldest failure leaves the window a slot frees up. A key full of
        # reservations only (no failures yet) frees up as soon as they end: 1 s.
        if not win.failures:
            return 1.0
        return max(1.0, win.failures[0] + self._window - now)

    def _maybe_sweep(self, now: float) -> None:
        """Forget idle keys once per window, so memory follows recent failures only."""
        if now - self._last_sweep < self._window:
            return
        self._last_sweep = now
        for key in list(self._keys):
            win = self._keys[key]
            self._prune(win, now)
            if not win.failures and not win.pending:
                del self._keys[key]
