"""Message envelope: ``{"type", "seq", "ts", "body"}`` (+ ``"src"`` when sealed) as UTF-8 JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from common.protocol.errors import MessageError

__all__ = [
    "MAX_SEQ",
    "Message",
    "MessageType",
    "Side",
    "decode_message",
    "encode_message",
]

MAX_SEQ = 2**63 - 1


class MessageType(StrEnum):
    """Every message type on the wire; docs/protocol.md gives direction and body."""

    # Handshake (plain JSON).
    HELLO = "hello"
    CHALLENGE = "challenge"
    PROOF = "proof"
    WELCOME = "welcome"
    AUTH_FAILED = "auth_failed"
    # After the handshake (Fernet tokens).
    HEARTBEAT = "heartbeat"
    ENGINE_STATUS = "engine_status"
    HEALTH_CHECK = "health_check"
    HEALTH_REPLY = "health_reply"
    SESSION_KEY = "session_key"
    CHARGE_REQUEST = "charge_request"
    CHARGE_AUTHORIZED = "charge_authorized"
    CHARGE_DENIED = "charge_denied"
    AUTHORIZE_SUPPLY = "authorize_supply"
    SUPPLY_STARTED = "supply_started"
    TELEMETRY = "telemetry"
    SUPPLY_ENDED = "supply_ended"
    TICKET = "ticket"
    STOP = "stop"
    RESUME = "resume"
    KEY_REVOKED = "key_revoked"
    LIST_CPS = "list_cps"
    CP_LIST = "cp_list"
    HISTORY = "history"
    STATUS = "status"
    ERROR = "error"
    BYE = "bye"


class Side(StrEnum):
    """Which end of a connection sealed a message (the envelope's ``src``)."""

    CLIENT = "client"
    SERVER = "server"


@dataclass(frozen=True)
class Message:
    """One protocol message.

    Args:
        type: what the message is.
        seq: per-connection, per-direction sequence number, from 1.
        ts: sender's clock (seconds since the epoch) when it was built.
        body: type-specific JSON object.
        src: the sealing side, present only on encrypted messages.
    """

    type: MessageType
    seq: int
    ts: float
    body: Mapping[str, Any] = field(default_factory=dict)
    src: Side | None = None


def encode_message(msg: Message) -> bytes:
    """Return the compact UTF-8 JSON form of ``msg``.

    Raises:
        MessageError: (remote=False) ``bad_body`` if the body is not JSON-serialisable.
    """
    envelope: dict[str, Any] = {
        "type": str(msg.type),
        "seq": msg.seq,
        "ts": msg.ts,
        "body": dict(msg.body),
    }
    if msg.src is not None:
        envelope["src"] = str(msg.src)
    try:
        text = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise MessageError("bad_body", f"cannot encode message: {exc}", remote=False) from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def decode_message(data: bytes) -> Message:
    """Parse DATA (plain or decrypted) into a :class:`Message`.

    Unknown top-level keys are ignored, so a later version may add some.

    Raises:
        MessageError: (remote=True) ``bad_utf8``, ``bad_json``, ``not_object``,
            ``missing_field``, ``unknown_type`` or ``bad_field``.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise MessageError("bad_utf8", "DATA is not UTF-8") from None
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):  # JSONDecodeError, NaN, huge ints, deep nesting
        raise MessageError("bad_json", "DATA is not JSON") from None
    if not isinstance(obj, dict):
        raise MessageError("not_object", "message is not a JSON object")
    for key in ("type", "seq", "ts", "body"):
        if key not in obj:
            raise MessageError("missing_field", f"message has no {key!r}")
    try:
        msg_type = MessageType(obj["type"])
    except ValueError:
        raise MessageError("unknown_type", f"unknown message type {obj['type']!r}") from None
    seq, ts, body = obj["seq"], obj["ts"], obj["body"]
    if type(seq) is not int or not 0 < seq <= MAX_SEQ:
        raise MessageError("bad_field", "seq must be an integer from 1")
    if type(ts) not in (int, float) or not _finite(ts):
        raise MessageError("bad_field", "ts must be a finite number")
    if not isinstance(body, dict):
        raise MessageError("bad_field", "body must be an object")
    src = obj.get("src")
    if src is not None:
        try:
            src = Side(src)
        except ValueError:
            raise MessageError("bad_field", "src must be 'client' or 'server'") from None
    return Message(msg_type, seq, float(ts), body, src)
