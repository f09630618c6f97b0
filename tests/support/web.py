"""The web dashboard under test: a real ``python -m web_ui`` process, and an asyncio loop in
a thread for the scripted peers (so a synchronous browser can drive the test meanwhile).
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from common.procs import ServiceProcess
from tests.support.central import CentralProcess, start_central

__all__ = ["LoopThread", "WebProcess", "start_central_with_events", "start_web"]

T = TypeVar("T")


@dataclass
class WebProcess:
    proc: ServiceProcess
    url: str  # http://127.0.0.1:PORT (no trailing slash)
    token: str


def start_web(
    tmp_path: Path,
    central_api: str,
    port: int,
    token: str,
    *,
    bootstrap: str | None = None,
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
    name: str = "web",
) -> WebProcess:
    """Start ``ev-web`` on 127.0.0.1:``port`` and wait until it serves."""
    args = [sys.executable, "-m", "web_ui", "--listen", f"127.0.0.1:{port}"]
    args += ["--central-api", central_api, "--health-interval", "0.5"]
    if bootstrap:
        args += ["--kafka-bootstrap", bootstrap]
    proc = ServiceProcess(
        args + (extra or []),
        env={"EV_OPERATOR_TOKEN": token, "EV_KAFKA_BOOTSTRAP": "", **(env or {})},
        log_path=tmp_path / f"{name}.log",
        name=name,
    ).start()
    proc.wait_ready("web", timeout=30)
    return WebProcess(proc, f"http://127.0.0.1:{port}", token)


def start_central_with_events(
    tmp_path: Path, db_url: str, port: int, api_port: int, bootstrap: str, **kwargs: Any
) -> CentralProcess:
    """:func:`start_central` with its outbox relay publishing to ``bootstrap``."""
    return start_central(tmp_path, db_url, port, api_port, kafka=bootstrap, **kwargs)


class LoopThread:
    """An asyncio event loop running in a daemon thread; ``run(coro)`` waits for a result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Any, *args: Any) -> None:
        """Run a plain function on the loop (scripted links are not thread-safe)."""
        done = threading.Event()

        def wrapped() -> None:
            try:
                fn(*args)
            finally:
                done.set()

        self.loop.call_soon_threadsafe(wrapped)
        done.wait(10)

    def close(self) -> None:
        """Cancel what is left on the loop, let it finish, then stop and close the loop."""

        async def _cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        try:
            self.run(_cancel_rest(), timeout=10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
