"""One peer's connection: the sans-IO protocol driven by asyncio's callbacks.

:class:`PeerProtocol` feeds the bytes a peer sends into its :class:`Connection`, hands
the handshake's two messages to the server's login task, then dispatches every
message through the server for the identity proved. :class:`PeerLink` is how the
domain talks back (``model.Link``): one write per frame, ACKs owed in the same write.
What a connection means to Central (logins, routing, audit) is :mod:`central.server`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any, cast

from central.routing import Peer
from common.protocol import NEED_DATA, Connection, MessageReceived, Rejected
from common.protocol.errors import ProtocolError
from common.protocol.messages import Message, MessageType
from common.tcp import MAX_BAD_FRAMES

if TYPE_CHECKING:
    from central.server import CentralServer

__all__ = ["MAX_WRITE_BUFFER", "PeerLink", "PeerProtocol"]

log = logging.getLogger(__name__)

MAX_WRITE_BUFFER = 512 * 1024  # a peer this far behind is not reading: drop it


class PeerLink:
    """A connected, authenticated (or authenticating) peer; implements ``network.Link``."""

    def __init__(self, transport: asyncio.Transport, conn: Connection, peer_ip: str) -> None:
        self._transport = transport
        self.conn = conn
        self.peer_ip = peer_ip
        self.closed = False
        self.close_reason = ""

    def send(self, msg_type: MessageType, body: Mapping[str, Any]) -> None:
        if self.closed:
            return
        try:
            frame = self.conn.send(msg_type, body)
        except ProtocolError:
            log.exception("cannot encode %s", msg_type)
            return
        # ACKs owed so far go first, in one write with the frame: the order on the wire
        # is the order things happened.
        self._transport.write(self.conn.data_to_send() + frame)
        self._check_buffer()

    def flush(self) -> None:
        """Write the ACKs and NACKs owed (once per read, not once per frame)."""
        out = self.conn.data_to_send()
        if out and not self.closed:
            self._transport.write(out)
            self._check_buffer()

    def _check_buffer(self) -> None:
        if self._transport.get_write_buffer_size() > MAX_WRITE_BUFFER:
            log.warning(
                "peer is not reading; dropping it", extra={"fields": {"peer": self.peer_ip}}
            )
            self.closed = True
            self.close_reason = "peer not reading"
            self._transport.abort()

    def pause(self) -> None:
        self._transport.pause_reading()

    def resume(self) -> None:
        if not self._transport.is_closing():
            self._transport.resume_reading()

    def close(self, reason: str) -> None:
        if not self.closed:
            self.flush()
            self.closed = True
            self.close_reason = reason
            self._transport.close()


class PeerProtocol(asyncio.Protocol):
    """One connection, driven by the loop's callbacks: no task or stream per connection.

    Bytes go into the sans-IO :class:`Connection`; each accepted message is handled as
    soon as it is read, and the ACKs of one read leave in one write. During the
    handshake the two messages it needs are handed to its task; afterwards every
    message is dispatched for the proven identity. A handler that must wait (for the
    database, say) holds the connection's later messages, unread, until it is done.
    """

    def __init__(self, server: CentralServer) -> None:
        self._server = server
        self.link: PeerLink | None = None
        self.peer: Peer | None = None
        self._handshake_inbox: asyncio.Queue[Message | None] | None = asyncio.Queue()
        self._waiting = False  # a handler is being awaited: hold further messages
        self._finishing: asyncio.Future[None] | None = None  # that handler
        self._ended = False
        self._peer_gone = False

    # -- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is one, not a subclass
        address = transport.get_extra_info("peername")
        conn = Connection(self._server.clock)
        self.link = PeerLink(transport, conn, str(address[0]) if address else "?")
        self._server.opened(self)

    def data_received(self, data: bytes) -> None:
        assert self.link is not None
        self.link.conn.receive_data(data)
        self._pump()

    def eof_received(self) -> bool:
        self._gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()
        self._server.closed(self)

    def _gone(self) -> None:
        """The peer is gone; what it sent before still counts, so end after handling it."""
        self._peer_gone = True
        if not self._waiting or self._handshake_inbox is not None:
            self._end()

    # -- the connection's life
    def secured(self, peer: Peer) -> None:
        """The handshake proved ``peer``: from now on messages are dispatched."""
        self.peer = peer
        self._handshake_inbox = None
        self._waiting = False
        self._pump()

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        assert self.link is not None
        if self._handshake_inbox is not None:
            self._handshake_inbox.put_nowait(None)
        elif self.peer is not None:
            self._server.disconnected(self.peer, self.link.close_reason)
        self.link.close("connection ended")

    def _pump(self) -> None:
        """Handle every complete message read so far, unless one is being awaited."""
        link = self.link
        assert link is not None
        conn = link.conn
        while not self._waiting and not link.closed:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            if isinstance(event, Rejected):
                self._server.rejected(link, event.error)
                if conn.rejected_count > MAX_BAD_FRAMES:
                    self._server.flooded(link)
                    break
            elif isinstance(event, MessageReceived):
                self._received(event.message)
        link.flush()

    def _received(self, msg: Message) -> None:
        assert self.link is not None
        if self._handshake_inbox is not None:
            self._handshake_inbox.put_nowait(msg)
            self._waiting = True  # the handshake reads on when it is ready
            return
        assert self.peer is not None
        if msg.type is MessageType.BYE:
            self.link.close("bye")
            return
        pending = self._server.handle(self.peer, msg)
        if pending is not None:
            self._waiting = True
            self.link.pause()
            self._finishing = asyncio.ensure_future(self._finish(pending))

    async def _finish(self, pending: Awaitable[None]) -> None:
        try:
            await pending
        finally:
            self._waiting = False
            assert self.link is not None
            if not self.link.closed:
                self.link.resume()
                self._pump()
            if self._peer_gone and not self._waiting:
                self._end()

    async def next_handshake_message(self) -> Message | None:
        """The next message of the handshake; None once the connection has ended."""
        assert self._handshake_inbox is not None and self.link is not None
        if self._waiting:
            self._waiting = False
            self._pump()  # what arrived meanwhile
        return await self._handshake_inbox.get()
