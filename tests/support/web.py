"""The web dashboard under test: a real ``python -m web_ui`` process, and an asyncio loop in
a thread for the scripted peers (so a synchronous browser can drive the test meanwhile).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.loopthread import LoopThread
from common.procs import ServiceProcess
from tests.support.central import CentralProcess, start_central

__all__ = ["LoopThread", "WebProcess", "start_central_with_events", "start_web"]


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
