"""Slow HTTP clients (slowloris) for benchmarks and tests: connections that trickle a request head.

Each comes from a loopback alias of its own (127.0.0.2, 127.0.0.3...; Linux routes all of
127/8 to the loopback), so a server that counts per client address tells them apart from
the real clients on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from pathlib import Path

__all__ = ["SlowClient", "can_use_source", "closed_by_peer"]

SLOW_HEAD = b"POST /api/chargepoints HTTP/1.1\r\nHost: localhost\r\n" + b"X-Slow: y\r\n" * 100


def can_use_source(address: str) -> str | None:
    """None if this machine can use ``address`` as a client address, else why not."""
    probe = socket.socket()
    try:
        probe.bind((address, 0))
    except OSError as exc:
        return f"cannot bind {address} as a client address: {exc.strerror}"
    finally:
        probe.close()
    return None


class SlowClient:
    """``count`` connections from ``source`` trickling a request head, one byte a second.

    With ``ca`` (the server's CA) they finish the TLS handshake first (a worker does it),
    else they speak plain HTTP (to an HTTPS port: its refusal path). ``held`` counts
    connections that got that far; ``cut`` records, per connection the server closed,
    how long it had lived.
    """

    def __init__(self, port: int, source: str, count: int, *, ca: Path | None = None) -> None:
        self._port = port
        self._ctx = ssl.create_default_context(cafile=str(ca)) if ca is not None else None
        self._source = source
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.held = 0
        self.cut: list[float] = []
        self._threads = [
            threading.Thread(target=self._one, daemon=True, name=f"slow-{source}-{i}")
            for i in range(count)
        ]

    def __enter__(self) -> SlowClient:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)

    def _one(self) -> None:
        opened = time.monotonic()
        try:
            with contextlib.ExitStack() as stack:
                sock = stack.enter_context(
                    socket.create_connection(
                        ("127.0.0.1", self._port), timeout=30, source_address=(self._source, 0)
                    )
                )
                if self._ctx is not None:
                    sock = stack.enter_context(
                        self._ctx.wrap_socket(sock, server_hostname="localhost")
                    )
                with self._lock:
                    self.held += 1
                for byte in SLOW_HEAD:
                    if self._stop.wait(1.0):
                        return
                    sock.sendall(bytes([byte]))
                    if self._ctx is None:
                        _raise_if_closed(sock)
        except OSError:  # reset, EOF during the handshake, broken pipe: the server cut us
            with self._lock:
                self.cut.append(time.monotonic() - opened)


def closed_by_peer(sock: socket.socket) -> bool:
    """Has the server closed ``sock``? (A peek that does not block.)"""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(timeout)


def _raise_if_closed(sock: socket.socket) -> None:
    """A plain socket sees the server's close only on read."""
    if closed_by_peer(sock):
        raise ConnectionResetError("closed by the server")
