"""HTTPS serving for the registry: cheroot, with three fixes over its built-in TLS adapter.

(The slow-client limits, a request-head deadline and a cap per client address, are
:mod:`common.http_guard`'s, shared with every service; here they are on by default.)

1. *Plain HTTP on the HTTPS port gets a JSON 400* (``https_required``) instead of
   cheroot's text/plain answer.
2. *The TLS handshake runs in a worker thread*, on the first read, not in cheroot's
   accept loop: there, one client that connects and sends nothing stalls every other
   client until the socket timeout (cherrypy/cheroot#748).
3. *Errors cheroot answers itself* (oversized body or headers, malformed request line,
   timeouts) are JSON ``{"error", "message"}`` too, like everything Flask answers.

These are general and belong in ``common.http`` eventually; they live here until then.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import time
from pathlib import Path
from typing import Any

from cheroot import errors as cheroot_errors
from cheroot.ssl.builtin import BuiltinSSLAdapter

from common.http import ConnectionLimits, WsgiServer
from common.http_guard import GuardedConnection, GuardedRequest

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "MAX_REQUEST_HEAD",
    "HttpsServer",
    "JsonErrorConnection",
    "WorkerHandshakeAdapter",
]

log = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 32 * 1024  # request line and headers: 414/413 beyond
# After refusing an oversized request, keep reading (and dropping) it for a while, as
# nginx's lingering close does: bounded in time, and in bytes as a sanity limit.
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 64 * 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0  # seconds a client may take to say hello and finish the handshake
_MAX_PLAIN_REQUEST = 64 * 1024  # what we read of a plain-HTTP request before answering it
_PLAIN_HTTP_BODY = json.dumps(
    {
        "error": "https_required",
        "message": "this port speaks HTTPS only: use https:// and verify the registry's "
        "CA certificate (EV_REGISTRY_CA)",
    }
).encode()


def _reason_code(status: str) -> str:
    """``"413 Request Entity Too Large"`` → ``"request_entity_too_large"`` (as Flask's)."""
    reason = status.partition(" ")[2] or "error"
    return "".join(ch if ch.isalnum() else "_" for ch in reason.lower()).strip("_")


class JsonErrorRequest(GuardedRequest):
    """cheroot's request handler, answering its own errors in JSON."""

    def simple_response(self, status: Any, msg: Any = "") -> None:
        """Answer an error cheroot found itself; the connection closes after it."""
        status = str(status)
        if isinstance(msg, bytes):
            msg = msg.decode("iso-8859-1")
        # cheroot drops the connection after any of these: say so, or a client that
        # pooled it would send its next request into a closed socket.
        self.close_connection = True
        body = json.dumps(
            {"error": _reason_code(status), "message": msg or status.partition(" ")[2]}
        ).encode()
        head = (
            f"{self.server.protocol} {status}\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Content-Type: application/json\r\n"
            "Connection: close\r\n\r\n"
        )
        try:
            self.conn.wfile.write(head.encode("iso-8859-1") + body)
        except OSError as exc:
            if exc.args and exc.args[0] not in cheroot_errors.socket_errors_to_ignore:
                raise
        if status[:3] in {"413", "414"}:  # refused before it was all read
            self._linger()

    def _linger(self) -> None:
        """Read (a bounded amount of) what the client is still sending, then let it close.

        cheroot refuses an oversized request before reading it all; a client still
        sending (as ``requests`` does) would otherwise get a reset, not our answer.
        """
        deadline = time.monotonic() + _LINGER_SECONDS
        left = _LINGER_BYTES
        try:
            while left > 0 and (remaining := deadline - time.monotonic()) > 0:
                self.conn.socket.settimeout(remaining)
                chunk = self.conn.rfile.read1(min(64 * 1024, left))
                if not chunk:
                    return
                left -= len(chunk)
        except (OSError, ValueError):  # the client went away, or took too long: done
            return


class JsonErrorConnection(GuardedConnection):
    RequestHandlerClass = JsonErrorRequest


class _WorkerHandshakeSocket(ssl.SSLSocket):
    """An ``SSLSocket`` that completes its handshake on the first read.

    The first read happens in a worker thread, so a slow or silent client holds one
    worker for at most :data:`HANDSHAKE_TIMEOUT`, never the accept loop.
    """

    _handshake_started = False

    def recv_into(self, buffer: Any, nbytes: int | None = None, flags: int = 0) -> int:
        if not self._handshake_started:
            self._handshake_started = True
            self._handshake()
        return super().recv_into(buffer, nbytes, flags)

    def _handshake(self) -> None:
        peer = _peer(self)
        timeout = self.gettimeout()
        self.settimeout(HANDSHAKE_TIMEOUT)
        try:
            first = _peek_first_byte(self)
            if first is None:
                raise cheroot_errors.FatalSSLAlert("closed before the TLS handshake")
            if first.isalpha():  # a TLS record starts with 0x14-0x18; "GET ..." does not
                _answer_plain_http(self)
                log.info("plain HTTP refused", extra={"fields": {"peer": peer}})
                raise cheroot_errors.FatalSSLAlert("plain HTTP on the HTTPS port")
            self.do_handshake()
        except (OSError, ValueError) as exc:  # ssl.SSLError and timeouts are OSErrors
            log.info(
                "TLS handshake failed",
                extra={"fields": {"peer": peer, "reason": getattr(exc, "reason", None) or exc}},
            )
            raise cheroot_errors.FatalSSLAlert(str(exc)) from exc
        finally:
            self.settimeout(timeout)


def _peer(sock: socket.socket) -> str:
    try:
        return str(sock.getpeername()[0])
    except OSError:
        return "?"


def _raw(sock: socket.socket) -> socket.socket:
    """A plain socket on a duplicate of ``sock``'s descriptor, bypassing TLS."""
    raw = socket.socket(fileno=socket.dup(sock.fileno()))
    raw.settimeout(sock.gettimeout())
    return raw


def _peek_first_byte(sock: socket.socket) -> bytes | None:
    with _raw(sock) as raw:
        data = raw.recv(1, socket.MSG_PEEK)
    return data or None


def _answer_plain_http(sock: socket.socket) -> None:
    """Read the plain request's head, answer 400 JSON, close gently.

    Reading first and draining after matter: closing a socket with unread input makes
    the kernel send RST, and the client may lose our answer.
    """
    with _raw(sock) as raw:
        seen = b""
        while b"\r\n\r\n" not in seen and len(seen) < _MAX_PLAIN_REQUEST:
            chunk = raw.recv(4096)
            if not chunk:
                return
            seen += chunk
        head = (
            "HTTP/1.1 400 Bad Request\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(_PLAIN_HTTP_BODY)}\r\n"
            "Connection: close\r\n\r\n"
        )
        raw.sendall(head.encode("ascii") + _PLAIN_HTTP_BODY)
        raw.shutdown(socket.SHUT_WR)
        raw.settimeout(2.0)
        drained = 0
        while drained < _MAX_PLAIN_REQUEST:
            chunk = raw.recv(4096)
            if not chunk:
                break
            drained += len(chunk)


class WorkerHandshakeAdapter(BuiltinSSLAdapter):
    """cheroot's built-in TLS adapter, deferring the handshake to the worker thread."""

    def __init__(self, certificate: str, private_key: str) -> None:
        super().__init__(certificate, private_key)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.sslsocket_class = _WorkerHandshakeSocket

    def wrap(self, sock: socket.socket) -> tuple[ssl.SSLSocket, dict[str, str]]:
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        # The handshake has not happened yet, so no cipher details: only what WSGI needs.
        return tls, {"wsgi.url_scheme": "https", "HTTPS": "on"}


class HttpsServer(WsgiServer):
    """:class:`common.http.WsgiServer` over TLS with the fixes above.

    Args:
        app: the WSGI application.
        certfile, keyfile: the server certificate (chain) and its key.
        threads: worker threads.
        max_request_body_size: larger bodies get a JSON 413 before the app sees them and
            the connection is closed. Keep it well above the app's own limit: the app's
            413 lets cheroot drain the body, so the client reliably reads the answer.
        limits: head deadline and per-address cap (:mod:`common.http_guard`).
    """

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        *,
        certfile: Path,
        keyfile: Path,
        threads: int = 16,
        max_request_body_size: int = 1024 * 1024,
        limits: ConnectionLimits | None = None,
    ) -> None:
        super().__init__(
            app,
            host,
            port,
            threads=threads,
            max_request_body_size=max_request_body_size,
            limits=limits,
        )
        # WsgiServer builds the cheroot server; we swap in our adapter and connection
        # class (common.http has no hook for them yet).
        cheroot = self._server
        cheroot.ssl_adapter = WorkerHandshakeAdapter(str(certfile), str(keyfile))
        cheroot.ConnectionClass = JsonErrorConnection
        cheroot.error_log = _error_log  # type: ignore[method-assign]
        # cheroot's default is no limit at all on the request line and headers.
        cheroot.max_request_header_size = MAX_REQUEST_HEAD


def _error_log(msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
    """cheroot's own complaints, into our structured log rather than raw stderr."""
    logging.getLogger("cheroot").log(level, msg, exc_info=traceback)
