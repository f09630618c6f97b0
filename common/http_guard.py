"""Serving limits against slow clients: a deadline on the request head, a cap per address.

cheroot gives each connection a worker thread while it reads a request, and its timeout
is per read: a client sending one header byte every few seconds holds a worker forever,
and a few such clients hold them all (two clients with eight connections each stopped a
16-thread Registry answering anyone). Two limits close that:

- **Head deadline.** From the moment a connection is handed to a worker (a new one, or a
  kept-alive one that sends again) its TLS handshake and request line and headers must
  all arrive within ``head_timeout``; past it, a reaper thread shuts the socket down, so
  the worker's blocked read returns and the worker is free. The plain-HTTP refusal on a
  TLS port runs inside the handshake, so it is under the same deadline.
- **Per address.** At most ``per_address`` requests of one client address are in the
  workers at once. Further connections from it *wait* without a worker (their deadline
  still running) until one of its own finishes, so a burst of real requests from one
  address is served in turn, not refused; beyond ``waiting_per_address`` waiting or
  idle connections, new ones from that address are closed at accept.

The body is not under the deadline (the app reads it): a slow body holds one of its
address's ``per_address`` workers, for as long as cheroot's per-read timeout allows.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cheroot import server as cheroot_server
from cheroot import wsgi

__all__ = ["ConnectionLimits", "GuardedConnection", "GuardedRequest", "GuardedServer"]

log = logging.getLogger(__name__)

_REAP_EVERY = 0.25  # seconds between deadline checks: the deadline's resolution
_LOG_EVERY = 60.0  # an attacker must not flood the log: one line per address and kind a minute


@dataclass(frozen=True)
class ConnectionLimits:
    """How long a request head may take, and how much of the server one address may hold.

    Args:
        head_timeout: seconds for the TLS handshake plus the request line and headers.
        per_address: requests of one client address served at once (None: no cap).
        waiting_per_address: with ``per_address``, how many more connections of that
            address may be open (waiting their turn, or idle between requests); beyond
            that, new ones are closed at once.
    """

    head_timeout: float = 10.0
    per_address: int | None = None
    waiting_per_address: int = 64

    def __post_init__(self) -> None:
        if not self.head_timeout > 0:
            raise ValueError("head_timeout must be positive")
        if self.per_address is not None and self.per_address < 1:
            raise ValueError("per_address must be at least 1")
        if self.waiting_per_address < 0:
            raise ValueError("waiting_per_address must be 0 or more")


class _Guard:
    """The bookkeeping: open, busy and waiting connections per address, and deadlines.

    Called from cheroot's accept loop (:meth:`admit`), its workers (:meth:`head_read`,
    :meth:`release`, :meth:`closed`) and the reaper thread; one lock guards it all.
    """

    def __init__(
        self,
        limits: ConnectionLimits,
        dispatch: Callable[[Any], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._dispatch = dispatch
        self._clock = clock
        self._lock = threading.Lock()
        self._open: Counter[str] = Counter()
        self._busy: Counter[str] = Counter()
        self._waiting: dict[str, deque[Any]] = {}
        self._deadlines: dict[Any, float] = {}
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        self._said: dict[tuple[str, str], tuple[float, int]] = {}  # (addr, what): (at, since)

    def admit(self, conn: Any) -> None:
        """A connection has something to read: give it a worker, make it wait, or refuse it."""
        addr = _address(conn)
        cap = self.limits.per_address
        with self._lock:
            if not getattr(conn, "_guard_open", False):
                if cap is not None and self._open[addr] >= cap + self.limits.waiting_per_address:
                    refused = True
                else:
                    refused = False
                    self._open[addr] += 1
                    conn._guard_open = True
            else:
                refused = False
            if not refused:
                self._deadlines[conn] = self._clock() + self.limits.head_timeout
                if cap is not None and self._busy[addr] >= cap:
                    self._waiting.setdefault(addr, deque()).append(conn)
                    return
                self._busy[addr] += 1
        if refused:
            self._say(addr, "connection refused: too many from one address")
            conn.close()
            return
        self._dispatch(conn)

    def head_read(self, conn: Any) -> None:
        """The request head is in (or the attempt is over): the deadline no longer applies."""
        with self._lock:
            self._deadlines.pop(conn, None)

    def release(self, conn: Any) -> None:
        """A worker is done with one request of ``conn``: let its address's next one in."""
        addr = _address(conn)
        following = None
        with self._lock:
            self._deadlines.pop(conn, None)
            self._busy[addr] -= 1
            waiting = self._waiting.get(addr)
            if waiting:
                following = waiting.popleft()
                self._busy[addr] += 1
                if not waiting:
                    del self._waiting[addr]
            if self._busy[addr] <= 0:
                del self._busy[addr]
        if following is not None:
            self._dispatch(following)

    def closed(self, conn: Any) -> None:
        with self._lock:
            self._deadlines.pop(conn, None)
            if getattr(conn, "_guard_open", False):
                conn._guard_open = False
                addr = _address(conn)
                self._open[addr] -= 1
                if self._open[addr] <= 0:
                    del self._open[addr]

    def reap(self) -> None:
        """Close every connection whose head deadline has passed."""
        now = self._clock()
        parked = []
        cut: list[str] = []
        with self._lock:
            for conn in [c for c, due in self._deadlines.items() if due <= now]:
                del self._deadlines[conn]
                addr = _address(conn)
                waiting = self._waiting.get(addr)
                if waiting is not None and conn in waiting:
                    waiting.remove(conn)
                    if not waiting:
                        del self._waiting[addr]
                    parked.append(conn)
                else:
                    # In a worker, blocked reading: shutting the socket down makes that
                    # read return. Under the lock, so the head cannot complete meanwhile.
                    # socket.socket's own shutdown: SSLSocket's would drop its TLS state
                    # under the worker's feet.
                    cut.append(addr)
                    with contextlib.suppress(OSError):  # already gone
                        socket.socket.shutdown(conn.socket, socket.SHUT_RDWR)
        for conn in parked:
            cut.append(_address(conn))
            conn.close()
        for addr in cut:
            self._say(addr, "request head too slow: connection closed")

    def _say(self, addr: str, what: str) -> None:
        """Log ``what`` about ``addr`` at most once a minute, with how often it happened."""
        now = self._clock()
        with self._lock:
            at, since = self._said.get((addr, what), (-_LOG_EVERY, 0))
            if now - at < _LOG_EVERY:
                self._said[(addr, what)] = (at, since + 1)
                return
            if len(self._said) > 10_000:  # bound the memory many addresses can take
                self._said.clear()
            self._said[(addr, what)] = (now, 0)
        log.info(what, extra={"fields": {"peer": addr, "since_last_line": since}})

    def start(self) -> None:
        self._stop.clear()
        self._reaper = threading.Thread(target=self._reap_loop, name="http-reaper", daemon=True)
        self._reaper.start()

    def stop(self) -> None:
        """Stop the reaper and close the connections still waiting for a worker."""
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=2)
        with self._lock:
            parked = [conn for waiting in self._waiting.values() for conn in waiting]
            self._waiting.clear()
        for conn in parked:
            conn.close()

    def _reap_loop(self) -> None:
        while not self._stop.wait(_REAP_EVERY):
            try:
                self.reap()
            except Exception:  # the reaper must outlive any one bad connection
                log.exception("connection reaper failed")


def _address(conn: Any) -> str:
    return str(conn.remote_addr or "")


class GuardedRequest(cheroot_server.HTTPRequest):
    """cheroot's request, telling the guard when the head has been read."""

    def parse_request(self) -> None:
        try:
            super().parse_request()
        finally:
            self.server.guard.head_read(self.conn)


class GuardedConnection(cheroot_server.HTTPConnection):
    """cheroot's connection, telling the guard when a request ends and when it closes."""

    RequestHandlerClass = GuardedRequest

    def communicate(self) -> bool:
        try:
            return bool(super().communicate())
        finally:
            self.server.guard.release(self)

    def close(self) -> None:
        self.server.guard.closed(self)
        super().close()


class GuardedServer(wsgi.Server):
    """cheroot's WSGI server with a :class:`_Guard` between the accept loop and the workers.

    ``ConnectionClass`` must stay a :class:`GuardedConnection`, or workers never report
    back and an address's slots are never freed.
    """

    ConnectionClass = GuardedConnection

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.guard = _Guard(limits, super().process_conn)

    def process_conn(self, conn: Any) -> None:
        self.guard.admit(conn)

    def serve(self) -> None:
        self.guard.start()
        try:
            super().serve()
        finally:
            self.guard.stop()
