"""Exponential back-off delays for reconnect loops.

Hand-written rather than tenacity's retry loop: the waits here must be cut short by
events (a new session key, a user command), so the loops own their sleeping and only
need the next delay.
"""

from __future__ import annotations

__all__ = ["Backoff"]


class Backoff:
    """``first``, ``first * factor``, ... capped at ``cap``; :meth:`reset` after success."""

    def __init__(self, first: float = 0.5, cap: float = 5.0, factor: float = 2.0) -> None:
        self.first = first
        self.cap = cap
        self.factor = factor
        self._next = first

    def next(self) -> float:
        delay = self._next
        self._next = min(self._next * self.factor, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first
