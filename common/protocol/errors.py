"""Errors of the wire protocol: one tree, each error with a machine code and a culprit.

    EVChargingError
     └── ProtocolError        .code (short machine string), .remote (True: the peer broke it)
          │                   local: already_secure (Connection.secure called twice)
          ├── FrameError      corrupt frame: bad_lrc, truncated, oversized;
          │                   local: oversized, bad_data (STX/ETX in DATA)
          ├── MessageError    frame fine, content not: bad_utf8, bad_json, not_object,
          │                   missing_field, unknown_type, bad_field; local: bad_body
          ├── CryptoError     any Fernet failure: invalid_token (always the message
          │                   "invalid token", whatever the cause); local: bad_key
          ├── SequenceError   replay, out_of_order, reflected; local: exhausted
          └── HandshakeError  auth_failed, throttled (.retry_after: Central delays
                              logins for this id or address), expired, out_of_state;
                              local: bad_principal, bad_credentials

``remote`` plays the part of h11's ``RemoteProtocolError`` / ``LocalProtocolError`` pair: a
remote error means "answer NACK (or AUTH_FAILED) and carry on or drop the peer"; a local one
means our own code asked for something the protocol forbids (a bug, never the peer's doing).
"""

from __future__ import annotations

from common.errors import EVChargingError

__all__ = [
    "CryptoError",
    "FrameError",
    "HandshakeError",
    "MessageError",
    "ProtocolError",
    "SequenceError",
]


class ProtocolError(EVChargingError):
    """Base of every error raised by ``common.protocol``.

    Args:
        code: short machine string naming the fault (``"bad_lrc"``, ``"replay"``...).
        message: human detail for logs; defaults to the code. Never sent to a peer.
        remote: True when the peer broke the protocol, False when we did.
    """

    def __init__(self, code: str, message: str | None = None, *, remote: bool = True) -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code
        self.remote = remote

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, remote={self.remote})"


class FrameError(ProtocolError):
    """A frame is corrupt (bad LRC, truncated, oversized) or cannot be built."""


class MessageError(ProtocolError):
    """A frame decoded but its content is not a valid message."""


class CryptoError(ProtocolError):
    """A Fernet operation failed.

    Every decryption failure (wrong key, tampered, expired, not a token) is this one error
    with code ``"invalid_token"`` and message ``"invalid token"``, so that nothing echoed
    back to a peer tells it why.
    """

    def __init__(
        self, code: str = "invalid_token", message: str = "invalid token", *, remote: bool = True
    ) -> None:
        super().__init__(code, message, remote=remote)


class SequenceError(ProtocolError):
    """A message is replayed, out of order, or one of our own reflected back."""


class HandshakeError(ProtocolError):
    """Authentication failed, a handshake message came out of state, or time ran out.

    Args:
        retry_after: with code ``"throttled"``, whole seconds before Central checks
            another proof for this id or address; None otherwise.
        moved_to: with code ``"moved"``, the HOST:PORT of the Central that owns the CP.
    """

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        remote: bool = True,
        retry_after: int | None = None,
        moved_to: str | None = None,
    ) -> None:
        super().__init__(code, message, remote=remote)
        self.retry_after = retry_after
        self.moved_to = moved_to
