"""The suite's one fake clock: time moves only when a test moves it.

Code under test takes its clock as a parameter (``clock=time.monotonic`` or ``time.time``
in production); tests pass a ``FakeClock`` instead and walk time forward with
``advance`` (or by setting ``now``), so nothing sleeps.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock"]


class FakeClock:
    """Seconds as a float, standing still until told to move.

    Args:
        now: the first reading.
        wall_start: the wall-clock instant of that first reading, for code that also
            takes a ``wall`` clock; by default the instant ``now`` seconds after the epoch.
    """

    def __init__(self, now: float = 1000.0, wall_start: datetime | None = None) -> None:
        self.now = now
        self._start = now
        self._wall_start = wall_start or datetime.fromtimestamp(now, UTC)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def wall(self) -> datetime:
        """The current reading as an aware UTC datetime."""
        return self._wall_start + timedelta(seconds=self.now - self._start)

    async def sleep(self, seconds: float) -> None:
        """An ``asyncio.sleep`` that moves the clock instead of waiting (it still yields)."""
        self.now += seconds
        await asyncio.sleep(0)
