"""h11-style connection: bytes in, events out, bytes to send. No I/O, no clock of its own.

    conn.receive_data(chunk)
    while (event := conn.next_event()) is not NEED_DATA:
        ...                                   # MessageReceived, AckReceived, ...
    sock.send(conn.data_to_send())            # the ACK / NACK owed for those frames
    sock.send(conn.send(MessageType.HEARTBEAT, {}))

Messages are plain JSON until :meth:`Connection.secure`; from then on both directions are
Fernet tokens and a plain frame is rejected (``invalid_token``), so nothing can downgrade.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from common.protocol.channel import DEFAULT_TTL, SecureChannel, check_sequence
from common.protocol.errors import FrameError, ProtocolError, SequenceError
from common.protocol.framing import (
    ACK,
    MAX_FRAME_DATA,
    NACK,
    NEED_DATA,
    Ack,
    Frame,
    FrameDecoder,
    NeedData,
    encode_frame,
)
from common.protocol.messages import (
    MAX_SEQ,
    Message,
    MessageType,
    Side,
    decode_message,
    encode_message,
)

__all__ = [
    "NEED_DATA",
    "AckReceived",
    "Connection",
    "ConnectionEvent",
    "MessageReceived",
    "NackReceived",
    "NeedData",
    "Rejected",
]

_ACK_B = bytes((ACK,))
_NACK_B = bytes((NACK,))


@dataclass(frozen=True)
class MessageReceived:
    """A frame was accepted (an ACK is queued) and carried ``message``."""

    message: Message


@dataclass(frozen=True)
class AckReceived:
    """The peer accepted the oldest frame we sent that was still unanswered."""


@dataclass(frozen=True)
class NackReceived:
    """The peer rejected the oldest unanswered frame we sent.

    ``frame`` holds its exact bytes: resend them with :meth:`Connection.resend` (the peer's
    counter did not advance, so the same frame is what it expects next).
    """

    frame: bytes = b""


@dataclass(frozen=True)
class Rejected:
    """A frame was refused (a NACK is queued); ``error`` says why (``error.remote`` is True)."""

    error: ProtocolError


ConnectionEvent = MessageReceived | AckReceived | NackReceived | Rejected


class Connection:
    """One end of a protocol connection.

    Args:
        clock: seconds since the epoch (stamps messages, checks token age).
        max_data: largest frame DATA accepted and sent.
    """

    def __init__(self, clock: Callable[[], float], max_data: int = MAX_FRAME_DATA) -> None:
        self._clock = clock
        self.max_data = max_data
        self._decoder = FrameDecoder(max_data)
        self._outgoing = bytearray()  # ACK / NACK bytes owed to the peer
        self._unanswered: deque[bytes] = deque()  # frames sent, awaiting ACK / NACK
        self._channel: SecureChannel | None = None
        self._send_seq = 0  # plain counters, used until secure()
        self._recv_seq = 0
        self.rejected_count = 0

    @property
    def pending_acks(self) -> int:
        """Frames sent and not yet answered: apply back-pressure when it grows."""
        return len(self._unanswered)

    @property
    def is_secure(self) -> bool:
        """True once :meth:`secure` was called."""
        return self._channel is not None

    @property
    def channel(self) -> SecureChannel | None:
        """The encrypted channel, once secure (for :meth:`SecureChannel.rekey`)."""
        return self._channel

    @property
    def discarded_bytes(self) -> int:
        """Stray bytes skipped between frames or in oversized frames."""
        return self._decoder.discarded_bytes

    @property
    def buffered(self) -> int:
        """Received bytes held internally (bounded once events are drained)."""
        return self._decoder.buffered

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the transport."""
        self._decoder.receive_data(data)

    def next_event(self) -> ConnectionEvent | NeedData:
        """Return the next event or :data:`NEED_DATA`; never raises for peer input."""
        try:
            event = self._decoder.next_event()
        except FrameError as exc:
            return self._reject(exc)
        if event is NEED_DATA:
            return NEED_DATA
        if isinstance(event, Frame):
            try:
                message = self._open(event.data)
            except ProtocolError as exc:
                return self._reject(exc)
            self._outgoing += _ACK_B
            return MessageReceived(message)
        sent = self._unanswered.popleft() if self._unanswered else b""
        if isinstance(event, Ack):
            return AckReceived()
        return NackReceived(sent)

    def _reject(self, error: ProtocolError) -> Rejected:
        self.rejected_count += 1
        self._outgoing += _NACK_B
        return Rejected(error)

    def _open(self, data: bytes) -> Message:
        if self._channel is not None:
            return self._channel.open(data)
        message = decode_message(data)
        check_sequence(self._recv_seq, message.seq)
        self._recv_seq = message.seq
        return message

    def data_to_send(self) -> bytes:
        """Drain the queued ACK / NACK bytes, in the order of the frames they answer."""
        out = bytes(self._outgoing)
        self._outgoing.clear()
        return out

    def send(self, msg_type: MessageType, body: Mapping[str, Any] | None = None) -> bytes:
        """Return the framed next message (plain JSON, or a Fernet token once secure).

        Raises:
            MessageError: (remote=False) body not JSON-serialisable.
            FrameError: (remote=False) message larger than ``max_data``.
        """
        body = {} if body is None else body
        if self._channel is not None:
            data = self._channel.seal(msg_type, body, max_size=self.max_data)
        else:
            if self._send_seq >= MAX_SEQ:
                raise SequenceError("exhausted", "send counter exhausted", remote=False)
            msg = Message(MessageType(msg_type), self._send_seq + 1, self._clock(), body)
            data = encode_message(msg)
        frame = encode_frame(data, self.max_data)
        if self._channel is None:
            self._send_seq += 1
        self._unanswered.append(frame)
        return frame

    def resend(self, frame: bytes) -> bytes:
        """Return ``frame`` again (from :class:`NackReceived`), counted as awaiting an answer."""
        self._unanswered.append(frame)
        return frame

    def secure(self, key: bytes, side: Side, ttl: float | None = DEFAULT_TTL) -> None:
        """Encrypt both directions from now on, with fresh counters from 1.

        Raises:
            ProtocolError: (remote=False) ``already_secure``; use ``channel.rekey``.
            CryptoError: (remote=False) ``bad_key``.
        """
        if self._channel is not None:
            raise ProtocolError("already_secure", "connection already secure", remote=False)
        self._channel = SecureChannel(key, side, self._clock, ttl)
