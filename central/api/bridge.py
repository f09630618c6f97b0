"""Calls from API threads into the network, which lives on Central's event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from central.network import Network

__all__ = ["Bridge"]

T = TypeVar("T")


class Bridge:
    """Run network operations on its loop from any thread, and wait for the answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop, network: Network, timeout: float = 15):
        self._loop = loop
        self.network = network
        self._timeout = timeout

    def call(self, make: Callable[[Network], Coroutine[Any, Any, T]]) -> T:
        """Await ``make(network)`` on the loop; return its result here."""
        future = asyncio.run_coroutine_threadsafe(make(self.network), self._loop)
        return future.result(self._timeout)

    def run(self, fn: Callable[[Network], T]) -> T:
        """Run plain ``fn(network)`` on the loop (a consistent view); return its result here."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(self.network))
            except Exception as exc:
                future.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return future.result(self._timeout)
