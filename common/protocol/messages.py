"""Message envelope: ``{"type", "seq", "ts", "body"}`` (+ ``"src"`` when sealed) as UTF-8 JSON."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from common.protocol.errors import MessageError

__all__ = [
    "MAX_KW",
    "MAX_KWH",
    "MAX_SEQ",
    "PRINCIPAL_ID",
    "ChargeRequest",
    "EngineAnswer",
    "EngineHealth",
    "EngineReport",
    "ErrorBody",
    "ErrorCode",
    "Heartbeat",
    "Message",
    "MessageType",
    "NoBody",
    "Side",
    "SupplyEnded",
    "SupplyStarted",
    "Telemetry",
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


# ---------------------------------------------------------------- typed bodies
#
# Every body a peer sends to Central is parsed once, here, into a frozen dataclass with
# checked fields, so no handler reads a raw mapping. A field of the wrong type, a number
# that is not finite or out of range, an id that is not one: ``MessageError("bad_field")``
# (remote), which Central answers with an ``error`` frame of code ``bad_message``. Unknown
# keys are ignored, as in the envelope, so a later version may add some.

MAX_KWH = Decimal(1_000_000)  # far above any vehicle; a bound on what a peer may claim
MAX_KW = Decimal(10_000)
_ENERGY_PLACES = Decimal("0.0001")
PRINCIPAL_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")  # a CP or driver id
_SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ErrorCode(StrEnum):
    """Codes of the ``error`` frame and of API_Central's errors; stable across versions.

    Peers react to these, never to the wording of ``reason`` (docs/central.md lists what
    each one means and who sends it).
    """

    BAD_MESSAGE = "bad_message"  # a body field is malformed
    INVALID_VALUE = "invalid_value"  # a value is out of range (price, target, location)
    BAD_ENERGY = "bad_energy"  # energy that shrinks or exceeds what the CP could deliver
    FORBIDDEN = "forbidden"  # acting for another CP or a driver
    NOT_ALLOWED = "not_allowed"  # a message type this role does not send
    UNKNOWN_CP = "unknown_cp"
    UNKNOWN_SESSION = "unknown_session"  # no such session *of this CP*
    NO_ALERT = "no_alert"
    CP_BUSY = "cp_busy"
    CP_UNAVAILABLE = "cp_unavailable"  # stopped, broken, disconnected, engine offline
    DRIVER_BUSY = "driver_busy"
    NO_SESSION = "no_session"  # the CP has no session in the state this message needs
    ENGINE_REFUSED = "engine_refused"  # the engine denied or did not answer in time
    NOT_SUPPLYING = "not_supplying"
    THROTTLED = "throttled"
    MOVED = "moved"  # a login reached a Central that does not own the CP: go to ``addr``
    INTERNAL = "internal_error"


def _bad(name: str, why: str) -> MessageError:
    return MessageError("bad_field", f"{name!r} {why}")


def _text(body: Mapping[str, Any], name: str, limit: int = 200) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(name, "must be a string")
    return value[:limit]


def _match(body: Mapping[str, Any], name: str, pattern: re.Pattern[str]) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise _bad(name, "is not a valid id")
    return value


def _session_id(body: Mapping[str, Any]) -> str:
    value = _match(body, "session_id", _SESSION_ID)
    if value is None:
        raise _bad("session_id", "is required")
    return value


def _flag(body: Mapping[str, Any], name: str, default: bool | None = None) -> bool:
    value = body.get(name, default)
    if type(value) is not bool:
        raise _bad(name, "must be true or false")
    return value


def _amount(body: Mapping[str, Any], name: str, high: Decimal) -> Decimal | None:
    """A JSON number from 0 to ``high`` as a Decimal (strings, NaN, ±inf refused)."""
    value = body.get(name)
    if value is None:
        return None
    if type(value) not in (int, float) or not _finite(value) or not 0 <= value <= high:
        raise _bad(name, f"must be a number from 0 to {high}")
    return Decimal(str(value)).quantize(_ENERGY_PLACES)


def _required(value: Decimal | None, name: str) -> Decimal:
    if value is None:
        raise _bad(name, "is required")
    return value


@dataclass(frozen=True)
class NoBody:
    """``list_cps``, ``history``, a driver's ``status``, ``bye``: nothing to read."""

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> NoBody:
        return cls()


@dataclass(frozen=True)
class Heartbeat:
    """Monitor → Central, every interval: the engine's health as the monitor sees it."""

    engine_ok: bool = True
    reason: str = ""

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Heartbeat:
        return cls(_flag(body, "engine_ok", True), _text(body, "reason"))


@dataclass(frozen=True)
class EngineHealth:
    """Monitor → Central (``engine_status``): the engine just became OK or KO."""

    ok: bool
    reason: str = ""

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> EngineHealth:
        return cls(_flag(body, "ok"), _text(body, "reason"))


@dataclass(frozen=True)
class ChargeRequest:
    """Driver (or a CP's own menu, through its engine) → Central: charge at ``cp_id``.

    ``driver_id`` is read only so that Central can refuse an engine naming one.
    """

    cp_id: str | None
    target_kwh: Decimal | None = None
    driver_id: str | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> ChargeRequest:
        return cls(
            _match(body, "cp_id", PRINCIPAL_ID),
            _amount(body, "target_kwh", MAX_KWH),
            _match(body, "driver_id", PRINCIPAL_ID),
        )


@dataclass(frozen=True)
class EngineAnswer:
    """Engine → Central: ``charge_authorized`` / ``charge_denied`` for one session."""

    session_id: str
    reason: str = ""

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> EngineAnswer:
        return cls(_session_id(body), _text(body, "reason"))


@dataclass(frozen=True)
class SupplyStarted:
    """Engine → Central: the vehicle is plugged in, supply of the session began."""

    session_id: str

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> SupplyStarted:
        return cls(_session_id(body))


@dataclass(frozen=True)
class Telemetry:
    """Engine → Central, every second of a supply: energy so far and power now."""

    session_id: str
    kwh: Decimal
    kw: Decimal

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> Telemetry:
        kwh = _required(_amount(body, "kwh", MAX_KWH), "kwh")
        return cls(_session_id(body), kwh, _amount(body, "kw", MAX_KW) or Decimal(0))


@dataclass(frozen=True)
class SupplyEnded:
    """Engine → Central: the supply ended (repeated until a ticket answers it)."""

    session_id: str
    kwh: Decimal
    reason: str = "unplugged"

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> SupplyEnded:
        kwh = _required(_amount(body, "kwh", MAX_KWH), "kwh")
        return cls(_session_id(body), kwh, _text(body, "reason", 32) or "unplugged")


@dataclass(frozen=True)
class EngineReport:
    """Engine → Central (``status``) on connecting: what it is supplying, if anything."""

    session_id: str | None
    supplying: bool
    kwh: Decimal

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> EngineReport:
        return cls(
            _match(body, "session_id", _SESSION_ID),
            _flag(body, "supplying", False),
            _amount(body, "kwh", MAX_KWH) or Decimal(0),
        )


@dataclass(frozen=True)
class ErrorBody:
    """Central → peer (``error``): a refusal with its :class:`ErrorCode`.

    ``code`` stays a plain string when parsed, so a code from a newer Central is shown
    rather than refused.
    """

    code: str
    reason: str
    session_id: str | None = None

    @classmethod
    def parse(cls, body: Mapping[str, Any]) -> ErrorBody:
        return cls(
            _text(body, "code", 32) or ErrorCode.INTERNAL,
            _text(body, "reason"),
            _match(body, "session_id", _SESSION_ID),
        )

    def to_body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": str(self.code), "reason": self.reason}
        if self.session_id is not None:
            out["session_id"] = self.session_id
        return out
