"""Sans-IO wire protocol: framing, messages, handshake, encrypted channel (docs/protocol.md).

Nothing here opens a socket or reads a clock: services feed bytes in, take events out,
and write the bytes they are given.
"""

from common.protocol.channel import SecureChannel, check_sequence
from common.protocol.connection import (
    AckReceived,
    Connection,
    ConnectionEvent,
    MessageReceived,
    NackReceived,
    Rejected,
)
from common.protocol.errors import (
    CryptoError,
    FrameError,
    HandshakeError,
    MessageError,
    ProtocolError,
    SequenceError,
)
from common.protocol.framing import (
    ACK,
    ETX,
    MAX_FRAME_DATA,
    NACK,
    NEED_DATA,
    STX,
    Ack,
    Frame,
    FrameDecoder,
    Nack,
    NeedData,
    encode_frame,
    lrc,
)
from common.protocol.handshake import ClientHandshake, HandshakeState, Role
from common.protocol.handshake_server import ServerHandshake
from common.protocol.keys import (
    ScryptParams,
    Verifier,
    check_secret,
    make_verifier,
    new_secret,
    new_session_key,
    verifier_from_key,
)
from common.protocol.messages import Message, MessageType, Side, decode_message, encode_message

__all__ = [
    "ACK",
    "ETX",
    "MAX_FRAME_DATA",
    "NACK",
    "NEED_DATA",
    "STX",
    "Ack",
    "AckReceived",
    "ClientHandshake",
    "Connection",
    "ConnectionEvent",
    "CryptoError",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "HandshakeError",
    "HandshakeState",
    "Message",
    "MessageError",
    "MessageReceived",
    "MessageType",
    "Nack",
    "NackReceived",
    "NeedData",
    "ProtocolError",
    "Rejected",
    "Role",
    "ScryptParams",
    "SecureChannel",
    "SequenceError",
    "ServerHandshake",
    "Side",
    "Verifier",
    "check_secret",
    "check_sequence",
    "decode_message",
    "encode_frame",
    "encode_message",
    "lrc",
    "make_verifier",
    "new_secret",
    "new_session_key",
    "verifier_from_key",
]
