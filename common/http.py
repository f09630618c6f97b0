"""HTTP plumbing shared by the Flask services: JSON errors, app extensions, a WSGI server.

Every error leaves as ``{"error": code, "message": text}`` with the right status,
never an HTML page or a traceback. Apps are served by cheroot (threaded, TLS-capable,
pure Python), not by Flask's development server.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from cheroot.ssl.builtin import BuiltinSSLAdapter
from flask import Flask, Response, current_app, jsonify
from werkzeug.exceptions import HTTPException

from common.http_guard import ConnectionLimits, GuardedServer

__all__ = [
    "ApiError",
    "ConnectionLimits",
    "WsgiServer",
    "app_extension",
    "install_json_errors",
    "json_error",
]

log = logging.getLogger(__name__)

T = TypeVar("T")


class ApiError(Exception):
    """Raise from a view to answer ``{"error": code, "message": message}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def json_error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error=code, message=message), status


def _code_for(exc: HTTPException) -> str:
    name = (exc.name or "error").lower()
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_")


def install_json_errors(app: Flask) -> None:
    """Answer every error, expected or not, with a JSON body."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        response = jsonify(error=exc.code, message=exc.message)
        response.status_code = exc.status
        response.headers.update(exc.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        response = jsonify(error=_code_for(exc), message=exc.description or exc.name)
        response.status_code = exc.code or 500
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error in %s", app.name)
        response = jsonify(error="internal_error", message="internal error; see the server log")
        response.status_code = 500
        return response


def app_extension(name: str, kind: type[T]) -> T:
    """What the composition root put in ``current_app.extensions[name]``, as a ``kind``.

    Raises:
        TypeError: it is something else (a wiring mistake, said plainly).
    """
    found = current_app.extensions[name]
    if not isinstance(found, kind):
        raise TypeError(
            f"app extension {name!r} is a {type(found).__name__}, not a {kind.__name__}"
        )
    return found


class WsgiServer:
    """A cheroot server on ``host:port`` (0 = any free port), optionally over TLS.

    Args:
        app: the WSGI application.
        certfile, keyfile: serve HTTPS with this certificate chain and key.
        threads: worker threads (each long-lived SSE stream holds one).
        limits: the request-head deadline (10 s by default) and an optional cap per
            client address (:mod:`common.http_guard`).
    """

    def __init__(
        self,
        app: Callable[..., Any],
        host: str,
        port: int,
        *,
        certfile: Path | None = None,
        keyfile: Path | None = None,
        threads: int = 16,
        max_request_body_size: int = 1024 * 1024,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._server = GuardedServer(
            (host, port),
            app,
            numthreads=threads,
            max=-1,
            request_queue_size=128,
            timeout=30,
            shutdown_timeout=2,
            limits=limits or ConnectionLimits(),
        )
        self._server.max_request_body_size = max_request_body_size
        if certfile is not None and keyfile is not None:
            self._server.ssl_adapter = BuiltinSSLAdapter(str(certfile), str(keyfile))
        self._thread: threading.Thread | None = None

    def prepare(self) -> tuple[str, int]:
        """Bind the socket; returns the bound ``(host, port)``."""
        self._server.prepare()
        host, port = self._server.bind_addr[:2]
        return str(host), int(port)

    def serve_forever(self) -> None:
        self._server.serve()

    def start_thread(self) -> tuple[str, int]:
        """Bind and serve in a background thread; returns the bound address."""
        addr = self.prepare()
        self._thread = threading.Thread(target=self._server.serve, name="wsgi", daemon=True)
        self._thread.start()
        return addr

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
