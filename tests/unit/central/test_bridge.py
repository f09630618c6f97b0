"""API_Central's bridge onto Central's loop: a loop that does not get to a request answers 503."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from central.api.bridge import Bridge
from common.http import ApiError


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def _stall(loop: asyncio.AbstractEventLoop, seconds: float) -> threading.Event:
    """Keep the loop busy (a loaded Central) for ``seconds``; set once it is busy."""
    busy = threading.Event()

    def hog() -> None:
        busy.set()
        time.sleep(seconds)

    loop.call_soon_threadsafe(hog)
    busy.wait(5)
    return busy


def test_a_busy_loop_is_a_503_with_retry_after(loop: asyncio.AbstractEventLoop) -> None:
    bridge = Bridge(loop, network=None, timeout=0.2)  # type: ignore[arg-type]
    _stall(loop, 1.0)
    with pytest.raises(ApiError) as caught:
        bridge.run(lambda network: "state")
    assert (caught.value.status, caught.value.code) == (503, "busy")
    assert caught.value.headers["Retry-After"] == "2"

    ran: list[str] = []

    async def command(network: Any) -> str:
        ran.append("command")
        return "done"

    _stall(loop, 1.0)
    with pytest.raises(ApiError) as caught:
        bridge.call(command)
    assert caught.value.status == 503
    # Not cancelled: the command still runs once the loop gets to it.
    patient = Bridge(loop, network=None, timeout=5)  # type: ignore[arg-type]
    assert patient.call(command) == "done"
    assert ran == ["command", "command"]  # the one answered 503 ran too


def test_answers_and_an_operations_own_errors_pass_through(
    loop: asyncio.AbstractEventLoop,
) -> None:
    bridge = Bridge(loop, network="the network", timeout=5)  # type: ignore[arg-type]
    assert bridge.run(lambda network: f"read {network}") == "read the network"

    def fails(network: Any) -> None:
        raise TimeoutError("the engine did not answer")

    with pytest.raises(TimeoutError, match="engine"):  # not turned into a 503
        bridge.run(fails)

    async def refused(network: Any) -> None:
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        bridge.call(refused)
