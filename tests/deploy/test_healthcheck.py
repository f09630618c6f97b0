"""``python -m common.healthcheck``, the containers' health checks, against real listeners."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from common.healthcheck import main


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_healthy_when_every_target_answers(http_port: int) -> None:
    assert main([f"http://127.0.0.1:{http_port}/ok", f"127.0.0.1:{http_port}"]) == 0


def test_an_error_status_is_unhealthy(http_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([f"http://127.0.0.1:{http_port}/ok", f"http://127.0.0.1:{http_port}/x"]) == 1
    assert capsys.readouterr().err.strip() == f"unhealthy: http://127.0.0.1:{http_port}/x: HTTP 503"


def test_a_closed_port_is_unhealthy(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: refused
        assert main([f"127.0.0.1:{port}"]) == 1
    assert f"unhealthy: 127.0.0.1:{port}" in capsys.readouterr().err


def test_targets_expand_environment_variables(
    http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EV_CENTRAL_ADDR", f"127.0.0.1:{http_port}")
    assert main(["$EV_CENTRAL_ADDR"]) == 0


def test_a_malformed_address_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-port-here"]) == 1
    assert "expected HOST:PORT" in capsys.readouterr().err
