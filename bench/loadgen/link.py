"""One load connection: an ``asyncio.Protocol`` around the project's sans-IO ``Connection``.

It authenticates with the real ``ClientHandshake`` (or, against ``bench.bare``, takes a
shared key at once), then times every frame it sends until Central's ACK and counts what
went wrong (NACKs, rejected frames, a dropped connection) in the worker's :class:`Stats`.
Messages Central sends are passed to ``handler``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from bench.loadgen.metrics import Stats
from common.protocol import (
    NEED_DATA,
    AckReceived,
    Connection,
    MessageReceived,
    NackReceived,
)
from common.protocol.errors import ProtocolError
from common.protocol.handshake import ClientHandshake
from common.protocol.messages import Message, MessageType, Side

__all__ = ["Handler", "LoadLink"]

Handler = Callable[["LoadLink", Message], None]


class LoadLink(asyncio.Protocol):
    """One client connection driven by callbacks: handshake, then measured sends."""

    def __init__(self, stats: Stats) -> None:
        self.conn = Connection(time.time)
        self.stats = stats
        self.handler: Handler = lambda link, msg: None
        self.transport: asyncio.Transport | None = None
        self.sent: deque[float] = deque()  # send time of each unanswered frame (0: unmeasured)
        self.ready: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.closing = False
        self.state: str | None = None  # the last state Central told (monitors)
        self._handshake: ClientHandshake | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def authenticate(self, handshake: ClientHandshake) -> None:
        self._handshake = handshake
        hello = handshake.start()
        self._write(hello.type, hello.body, 0.0)

    def secure_now(self, key: bytes) -> None:
        """Bare mode: no handshake, the shared key at once."""
        self.conn.secure(key, Side.CLIENT)
        self.ready.set_result(key)

    def send(self, msg_type: MessageType, body: dict[str, Any]) -> bool:
        """Send a measured frame (its ACK latency is recorded); False once closed."""
        if self.closed:
            return False
        self.stats.sent += 1
        self._write(msg_type, body, time.perf_counter())
        return True

    def _write(self, msg_type: MessageType, body: Mapping[str, Any], stamp: float) -> None:
        assert self.transport is not None
        frame = self.conn.send(msg_type, body)
        self.sent.append(stamp)
        self.transport.write(frame)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        conn, stats, sent = self.conn, self.stats, self.sent
        conn.receive_data(data)
        while (event := conn.next_event()) is not NEED_DATA:
            kind = type(event)
            if kind is AckReceived:
                stamp = sent.popleft() if sent else 0.0
                if stamp:
                    stats.acked += 1
                    stats.ack.add(now - stamp)
            elif kind is MessageReceived:
                assert isinstance(event, MessageReceived)
                msg = event.message
                if self._handshake is not None:
                    self._on_handshake(msg)
                else:
                    if msg.type is MessageType.STATUS and "state" in msg.body:
                        self.state = str(msg.body["state"])
                    self.handler(self, msg)
            elif kind is NackReceived:
                if sent and sent.popleft():
                    stats.nacked += 1
            else:
                stats.rejected += 1
        out = conn.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)

    def _on_handshake(self, msg: Message) -> None:
        handshake = self._handshake
        assert handshake is not None
        try:
            reply = handshake.receive(msg)
        except ProtocolError as exc:
            self._handshake = None
            if not self.ready.done():
                self.ready.set_exception(exc)
            self.close()
            return
        if reply is not None:
            self._write(reply.type, reply.body, 0.0)
        key = handshake.session_key
        if key is not None:
            self._handshake = None
            self.conn.secure(key, Side.CLIENT)
            self.ready.set_result(key)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.closing:
            self.stats.dropped += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("connection lost"))

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()
