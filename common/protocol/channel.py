"""Encrypted, sequenced messages after the handshake (Fernet, time injected)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from common.protocol.errors import CryptoError, FrameError, MessageError, SequenceError
from common.protocol.messages import (
    MAX_SEQ,
    Message,
    MessageType,
    Side,
    decode_message,
    encode_message,
)

__all__ = ["DEFAULT_TTL", "SecureChannel", "Side", "check_sequence"]

DEFAULT_TTL = 120.0


def check_sequence(last: int, seq: int) -> None:
    """Accept only ``seq == last + 1``.

    Raises:
        SequenceError: ``replay`` (seq <= last) or ``out_of_order`` (seq > last + 1).
    """
    if seq <= last:
        raise SequenceError("replay", f"seq {seq} <= last {last}")
    if seq != last + 1:
        raise SequenceError("out_of_order", f"seq {seq} != {last + 1}")


def _fernet(key: bytes) -> Fernet:
    try:
        return Fernet(key)
    except (ValueError, TypeError):
        raise CryptoError("bad_key", "invalid key", remote=False) from None


class SecureChannel:
    """Seal and open messages under a session key, each direction with its own counter.

    Args:
        key: the Fernet session key.
        side: our side; messages claiming to come from it are reflections.
        clock: seconds since the epoch; stamps sealed tokens and checks their age.
        ttl: seconds a token stays valid (None: no limit). Fernet also refuses tokens
            stamped more than 60 s in the future.

    Raises:
        CryptoError: (remote=False) ``bad_key`` if ``key`` is not a Fernet key.
    """

    def __init__(
        self,
        key: bytes,
        side: Side,
        clock: Callable[[], float],
        ttl: float | None = DEFAULT_TTL,
    ) -> None:
        self.side = Side(side)
        self._clock = clock
        self.ttl = ttl
        self._sealer = _fernet(key)
        self._opener: Fernet | MultiFernet = self._sealer
        self._send_seq = 0
        self._recv_seq = 0

    @property
    def send_seq(self) -> int:
        """Sequence number of the last message sealed (0 before the first)."""
        return self._send_seq

    @property
    def recv_seq(self) -> int:
        """Sequence number of the last message accepted (0 before the first)."""
        return self._recv_seq

    def seal(
        self, msg_type: MessageType, body: Mapping[str, Any], *, max_size: int | None = None
    ) -> bytes:
        """Encrypt the next message; the counter advances only if this succeeds.

        Args:
            msg_type: message type.
            body: JSON-serialisable mapping.
            max_size: largest token accepted (the frame's DATA limit).

        Returns:
            The Fernet token (URL-safe base64, safe to frame).

        Raises:
            MessageError: (remote=False) ``bad_body``.
            FrameError: (remote=False) ``oversized`` when the token exceeds ``max_size``.
        """
        if self._send_seq >= MAX_SEQ:
            raise SequenceError("exhausted", "send counter exhausted", remote=False)
        now = self._clock()
        msg = Message(MessageType(msg_type), self._send_seq + 1, now, body, self.side)
        token = self._sealer.encrypt_at_time(encode_message(msg), int(now))
        if max_size is not None and len(token) > max_size:
            raise FrameError("oversized", f"token of {len(token)} bytes", remote=False)
        self._send_seq += 1
        return token

    def open(self, token: bytes) -> Message:
        """Decrypt, check and accept one token; a rejected one leaves the counter alone.

        Raises:
            CryptoError: ``invalid_token`` (wrong key, tampered, expired, garbage).
            MessageError: the plaintext is not a valid message (e.g. no ``src``).
            SequenceError: ``reflected``, ``replay`` or ``out_of_order``.
        """
        try:
            if self.ttl is None:
                data = self._opener.decrypt(token)
            else:
                data = self._opener.decrypt_at_time(token, int(self.ttl), int(self._clock()))
        except (InvalidToken, ValueError, TypeError):
            raise CryptoError() from None
        msg = decode_message(data)
        if msg.src is None:
            raise MessageError("missing_field", "sealed message has no 'src'")
        if msg.src == self.side:
            raise SequenceError("reflected", "message sealed by our own side")
        check_sequence(self._recv_seq, msg.seq)
        self._recv_seq = msg.seq
        return msg

    def rekey(self, new_key: bytes, *, accept_previous: bool = False) -> None:
        """Switch to ``new_key``; counters continue.

        Args:
            new_key: the new session key (seals from now on).
            accept_previous: also open tokens under the old key until the next rekey, for
                messages the peer sealed before it switched. Leave False after a revocation.
        """
        new = _fernet(new_key)
        self._opener = MultiFernet([new, self._sealer]) if accept_previous else new
        self._sealer = new
