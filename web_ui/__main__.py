"""``ev-web``: serve the dashboard until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType

from common.config import argv_or_default, run_main
from common.errors import ConfigError
from common.http import WsgiServer
from common.logs import setup_logging
from common.ready import announce
from web_ui.app import create_app
from web_ui.central_client import CentralClient
from web_ui.deps import Clients
from web_ui.live import LiveBoard
from web_ui.registry_client import RegistryClient
from web_ui.settings import PROG, WebSettings, parse_settings

__all__ = ["main"]

log = logging.getLogger("web_ui")


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, lambda: _run(argv_or_default(argv)))


SNAPSHOT_TIMEOUT = 20.0  # seconds for the live board's reads of API_Central


def build(settings: WebSettings) -> tuple[Clients, WsgiServer]:
    """The composition root: clients, live board, app and server (nothing started)."""
    central = CentralClient(settings.central_api, settings.operator_token)
    registry = None
    if settings.registry_url and settings.registry_token:
        registry = RegistryClient(
            settings.registry_url, settings.registry_ca, settings.registry_token
        )
    live = LiveBoard(
        # Its own client, with more patience: a snapshot of a large fleet from a loaded
        # Central takes seconds, and it is read off the event path (web_ui/live.py).
        CentralClient(settings.central_api, settings.operator_token, timeout=SNAPSHOT_TIMEOUT),
        bootstrap=settings.kafka_bootstrap,
        resync_interval=settings.resync_interval,
        health_interval=settings.health_interval,
        frame_interval=settings.frame_interval,
        # Leave threads for ordinary pages and the CSV export.
        max_subscribers=max(1, settings.threads - 8),
    )
    clients = Clients(central, live, registry)
    app = create_app(settings, clients)
    server = WsgiServer(app, settings.listen.host, settings.listen.port, threads=settings.threads)
    return clients, server


def _run(argv: list[str]) -> int:
    settings = parse_settings(argv)
    setup_logging("web", settings.log_level)
    clients, server = build(settings)
    try:
        host, port = server.prepare()
    except OSError as exc:
        reason = f"cannot listen on {settings.listen}: {exc.strerror}"
        raise ConfigError("--listen", reason) from None
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    clients.live.start()
    serving = threading.Thread(target=server.serve_forever, name="wsgi", daemon=True)
    serving.start()
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"Web dashboard on http://{shown}:{port}/", flush=True)
    announce("web", url=f"http://{shown}:{port}/")
    if settings.operator_token is None:
        print("Operator area off: EV_OPERATOR_TOKEN is not set", flush=True)
    if settings.kafka_bootstrap is None:
        print("No Kafka bootstrap: the board refreshes from API_Central snapshots only", flush=True)
    try:
        while not stop.wait(0.5):
            if not serving.is_alive():
                log.error("the HTTP server stopped unexpectedly")
                return 1
    finally:
        clients.live.stop()  # ends every open event stream, so the server can stop
        server.stop()
        serving.join(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
