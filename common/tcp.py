"""asyncio TCP plumbing shared by every server and client of the wire protocol.

:func:`read_message` reads until one message is accepted, writing the ACK/NACK bytes
the sans-IO ``Connection`` owes as it goes. :class:`ConnectionServer` is a TCP server
that owns one task per connection and ends them all on :meth:`ConnectionServer.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from common.config import HostPort
from common.protocol import NEED_DATA, Connection, MessageReceived, Rejected
from common.protocol.errors import ProtocolError
from common.protocol.messages import Message

__all__ = [
    "MAX_BAD_FRAMES",
    "READ_CHUNK",
    "ConnectionServer",
    "free_port",
    "port_in_use",
    "read_message",
]

READ_CHUNK = 64 * 1024
MAX_BAD_FRAMES = 20  # rejected frames tolerated on one connection before it is dropped


_LOWEST_PORT = 10_000
_handed_out: set[int] = set()  # ports this process was given: never twice


def _ephemeral_low() -> int:
    """The first port the kernel picks for outgoing connections (Linux; else 32768)."""
    try:
        text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
        return int(text.split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago.

    Chosen below the kernel's range for outgoing connections: a port the kernel picked
    (``bind(0)``) can be given to some process's outgoing connection, a database client's
    say, before the service it was meant for binds it. Falls back to the kernel's choice
    when no port below that range is free.
    """
    top = _ephemeral_low()
    for _ in range(200 if top - _LOWEST_PORT > 1_000 else 0):
        port = random.randrange(_LOWEST_PORT, top)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """A live listener holds ``host:port``.

    SO_REUSEADDR as servers bind: TIME_WAIT leftovers of an earlier run do not count.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
        return False


async def read_message(
    reader: asyncio.StreamReader,
    conn: Connection,
    write: Callable[[bytes], None],
    on_reject: Callable[[ProtocolError], None] | None = None,
    max_bad: int = MAX_BAD_FRAMES,
) -> Message | None:
    """The next accepted message; None at EOF or once the peer sent more than ``max_bad``
    rejected frames (``conn.rejected_count`` tells which)."""
    while True:
        event = conn.next_event()
        out = conn.data_to_send()
        if out:
            write(out)
        if event is NEED_DATA:
            data = await reader.read(READ_CHUNK)
            if not data:
                return None
            conn.receive_data(data)
        elif isinstance(event, MessageReceived):
            return event.message
        elif isinstance(event, Rejected):
            if on_reject is not None:
                on_reject(event.error)
            if conn.rejected_count > max_bad:
                return None


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class ConnectionServer:
    """A TCP server running ``handler`` in one task per connection.

    Args:
        handler: serves one connection; it should close its writer when done.
        backlog: pending connections the kernel may queue.
    """

    def __init__(self, handler: Handler, *, backlog: int = 4096) -> None:
        self._handler = handler
        self._backlog = backlog
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> HostPort:
        """Listen (port 0: any free port); returns the bound address."""
        self._server = await asyncio.start_server(
            self._accept, host, port, limit=READ_CHUNK, backlog=self._backlog
        )
        sock = self._server.sockets[0].getsockname()
        return HostPort(str(sock[0]), int(sock[1]))

    async def close(self) -> None:
        """Stop listening and end every connection's task."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._handler(reader, writer)
        except asyncio.CancelledError:
            # Only close() cancels these tasks. Ending normally keeps Python 3.11's
            # client_connected_cb bookkeeping from logging a traceback at shutdown.
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
