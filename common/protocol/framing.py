"""Sans-IO framing: ``STX · DATA · ETX · LRC`` frames and bare ACK / NACK bytes.

The decoder never touches a socket: feed it bytes with :meth:`FrameDecoder.receive_data`,
pull events with :meth:`FrameDecoder.next_event` until it returns :data:`NEED_DATA`.
A corrupt frame raises :class:`FrameError` *after* the decoder has resynchronised, so the
caller answers NACK and simply asks for the next event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from common.protocol.errors import FrameError

__all__ = [
    "ACK",
    "ETX",
    "MAX_FRAME_DATA",
    "NACK",
    "NEED_DATA",
    "STX",
    "Ack",
    "Frame",
    "FrameDecoder",
    "FrameEvent",
    "Nack",
    "NeedData",
    "encode_frame",
    "lrc",
]

STX = 0x02
ETX = 0x03
ACK = 0x06
NACK = 0x15
MAX_FRAME_DATA = 64 * 1024

_STX_B = b"\x02"
_ETX_B = b"\x03"
# Outside a frame only these bytes mean something; inside, only STX and ETX do.
_OUTSIDE = re.compile(b"[\x02\x06\x15]")
_INSIDE = re.compile(b"[\x02\x03]")


class NeedData(Enum):
    """Type of the :data:`NEED_DATA` sentinel (an enum so ``is`` narrows for mypy)."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA


@dataclass(frozen=True)
class Frame:
    """A well-formed frame; ``data`` is its DATA part (LRC already checked)."""

    data: bytes


@dataclass(frozen=True)
class Ack:
    """A bare ACK byte (0x06) outside any frame."""


@dataclass(frozen=True)
class Nack:
    """A bare NACK byte (0x15) outside any frame."""


FrameEvent = Frame | Ack | Nack


def lrc(data: bytes) -> int:
    """Return the XOR of all bytes of ``data`` (0 for empty data).

    Folds the bytes as one big integer, halving its width each step: O(n) work done in C
    instead of a Python loop per byte (2x faster at 200 bytes, 10x from 4 KiB).
    """
    width = len(data)
    if width == 0:
        return 0
    value = int.from_bytes(data, "little")
    while width > 1:
        half = (width + 1) // 2
        value = (value & ((1 << (8 * half)) - 1)) ^ (value >> (8 * half))
        width = half
    return value


def encode_frame(data: bytes, max_data: int = MAX_FRAME_DATA) -> bytes:
    """Return ``STX + data + ETX + LRC``.

    Raises:
        FrameError: (remote=False) ``bad_data`` if DATA holds an STX or ETX byte,
            ``oversized`` if it is longer than ``max_data``.
    """
    if len(data) > max_data:
        raise FrameError("oversized", f"DATA is {len(data)} bytes > {max_data}", remote=False)
    if _STX_B in data or _ETX_B in data:
        raise FrameError("bad_data", "DATA must not contain STX or ETX", remote=False)
    return b"".join((_STX_B, data, _ETX_B, bytes((lrc(data),))))


class _State(Enum):
    OUTSIDE = "outside"  # between frames
    DATA = "data"  # after STX, collecting DATA
    LRC = "lrc"  # after ETX, the next byte is the LRC
    DISCARD = "discard"  # oversized frame: drop bytes until ETX
    DISCARD_LRC = "discard_lrc"  # oversized frame ended: drop its LRC byte


class FrameDecoder:
    """Turn a byte stream into :class:`Frame`, :class:`Ack` and :class:`Nack` events.

    Buffering is bounded: once :meth:`next_event` has returned :data:`NEED_DATA`, the
    decoder holds at most ``max_data`` bytes (the partial DATA of the current frame). A
    chunk given to :meth:`receive_data` is kept only until it is drained, so read with a
    bounded size and drain after each read.

    Args:
        max_data: largest DATA accepted; longer frames raise ``oversized`` once and are
            skipped up to their ETX and LRC.
    """

    def __init__(self, max_data: int = MAX_FRAME_DATA) -> None:
        if max_data < 1:
            raise ValueError("max_data must be positive")
        self.max_data = max_data
        self.discarded_bytes = 0
        self._raw = bytearray()  # bytes received, not yet looked at from _pos on
        self._pos = 0
        self._data = bytearray()  # DATA of the current frame split over several chunks
        self._state = _State.OUTSIDE
        self._complete = b""  # DATA of a frame whose ETX was seen, awaiting its LRC

    @property
    def buffered(self) -> int:
        """Bytes held internally (unread input plus partial DATA)."""
        return len(self._raw) - self._pos + len(self._data) + len(self._complete)

    def receive_data(self, data: bytes) -> None:
        """Append received bytes; any chunking, including empty chunks, is fine."""
        if self._pos:
            del self._raw[: self._pos]
            self._pos = 0
        self._raw += data

    def next_event(self) -> FrameEvent | NeedData:
        """Return the next event, or :data:`NEED_DATA` when the input is exhausted.

        Raises:
            FrameError: (remote=True) ``bad_lrc``, ``truncated`` or ``oversized``; the
                decoder is already resynchronised, call ``next_event`` again.
        """
        raw = self._raw
        while True:
            state = self._state
            if state is _State.OUTSIDE:
                match = _OUTSIDE.search(raw, self._pos)
                if match is None:
                    self.discarded_bytes += len(raw) - self._pos
                    self._consume_all()
                    return NEED_DATA
                index = match.start()
                self.discarded_bytes += index - self._pos
                self._pos = index + 1
                byte = raw[index]
                if byte == ACK:
                    return Ack()
                if byte == NACK:
                    return Nack()
                self._state = _State.DATA
            elif state is _State.DATA:
                match = _INSIDE.search(raw, self._pos)
                end = len(raw) if match is None else match.start()
                if len(self._data) + end - self._pos > self.max_data:
                    # Too long: forget what we have and skip up to the terminator.
                    self.discarded_bytes += len(self._data) + end - self._pos
                    self._data.clear()
                    self._pos = end
                    self._state = _State.DISCARD
                    raise FrameError("oversized", f"DATA longer than {self.max_data} bytes")
                if match is None:
                    self._data += raw[self._pos :]
                    self._consume_all()
                    return NEED_DATA
                if raw[end] == STX:
                    # A new frame starts at this STX; the one before it lost its end.
                    self.discarded_bytes += len(self._data) + end - self._pos
                    self._data.clear()
                    self._pos = end + 1
                    raise FrameError("truncated", "STX inside a frame")
                if self._data:
                    self._data += raw[self._pos : end]
                    self._complete = bytes(self._data)
                    self._data.clear()
                else:
                    self._complete = bytes(raw[self._pos : end])
                self._pos = end + 1
                self._state = _State.LRC
            elif state is _State.LRC:
                if self._pos >= len(raw):
                    self._consume_all()
                    return NEED_DATA
                got = raw[self._pos]
                self._pos += 1
                self._state = _State.OUTSIDE
                data = self._complete
                self._complete = b""
                expected = lrc(data)
                if got != expected:
                    raise FrameError("bad_lrc", f"LRC 0x{got:02x} != 0x{expected:02x}")
                return Frame(data)
            elif state is _State.DISCARD:
                match = _INSIDE.search(raw, self._pos)
                if match is None:
                    self.discarded_bytes += len(raw) - self._pos
                    self._consume_all()
                    return NEED_DATA
                index = match.start()
                self.discarded_bytes += index - self._pos
                self._pos = index + 1
                if raw[index] == STX:
                    # Resynchronise on the new frame at once (the error was reported).
                    self._state = _State.DATA
                else:
                    self.discarded_bytes += 1  # the ETX
                    self._state = _State.DISCARD_LRC
            else:  # DISCARD_LRC
                if self._pos >= len(raw):
                    self._consume_all()
                    return NEED_DATA
                self._pos += 1
                self.discarded_bytes += 1
                self._state = _State.OUTSIDE

    def _consume_all(self) -> None:
        self._raw.clear()
        self._pos = 0
