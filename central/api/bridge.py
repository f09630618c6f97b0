"""Calls from API threads into the network, which lives on Central's event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from central.network import Network
from common.http import ApiError

__all__ = ["Bridge", "busy"]

T = TypeVar("T")
BUSY_RETRY_AFTER = "2"  # seconds: a loop this far behind is catching up, not gone


def busy(timeout: float) -> ApiError:
    """503 for an event loop that did not get to a request in time (a loaded Central)."""
    return ApiError(
        503,
        "busy",
        f"Central did not answer within {timeout:g} s; it is busy: try again "
        "(a command may still take effect)",
        {"Retry-After": BUSY_RETRY_AFTER},
    )


class Bridge:
    """Run network operations on its loop from any thread, and wait for the answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, network: Network, timeout: float = 15):
        self._loop = loop
        self.network = network
        self._timeout = timeout

    def call(self, make: Callable[[Network], Coroutine[Any, Any, T]]) -> T:
        """Await ``make(network)`` on the loop; return its result here.

        Raises:
            ApiError: 503 ``busy`` when the loop did not finish it within the timeout
                (it is not cancelled: a command half-way through is left to finish).
        """
        future = asyncio.run_coroutine_threadsafe(make(self.network), self._loop)
        return self._wait(future)

    def run(self, fn: Callable[[Network], T]) -> T:
        """Run plain ``fn(network)`` on the loop (a consistent view); return its result here.

        Raises:
            ApiError: 503 ``busy`` when the loop did not get to it within the timeout.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(self.network))
            except Exception as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return self._wait(future)

    def _wait(self, future: concurrent.futures.Future[T]) -> T:
        try:
            return future.result(self._timeout)
        except TimeoutError:
            if future.done():
                raise  # the operation's own TimeoutError, not our wait
            raise busy(self._timeout) from None
