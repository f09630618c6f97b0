"""Challenge-response handshake (SCRAM-style), a pure state machine with time injected.

    C→S  HELLO        {role, id, nonce}
    S→C  CHALLENGE    {nonce, salt, n, r, p}      (role engine: {nonce} only)
    C→S  PROOF        {proof}
    S→C  WELCOME      {signature, wrapped_key}  |  AUTH_FAILED {reason: "authentication failed"}

Instead of the CHALLENGE or the WELCOME, a server that is delaying logins for this id or
address after failed proofs answers ``AUTH_FAILED {reason, code: "throttled",
retry_after: N}`` (see :func:`throttled_body`); the client raises ``HandshakeError`` with
code ``throttled`` and ``retry_after`` N, so it can wait and retry instead of telling
its user the secret is wrong. When several Centrals share the CPs, one that does not own
the CP answers ``AUTH_FAILED {reason, code: "moved", addr: "HOST:PORT"}`` (see
:func:`moved_body`) at the HELLO, or at the PROOF if another took the CP meanwhile; the
client raises ``HandshakeError`` with code ``moved`` and ``moved_to``, and goes there.

Both sides build the same ``auth_message`` (see :func:`auth_message`); the server learns
``client_key`` from the proof, checks it against the stored key, and wraps a fresh session
key under a key derived from it (the server's side is
:mod:`common.protocol.handshake_server`). The client checks the server's signature (mutual
authentication) and unwraps the session key. The one transition table is ``_TRANSITIONS``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any

from common.protocol import keys
from common.protocol.errors import CryptoError, HandshakeError, MessageError
from common.protocol.keys import ScryptParams
from common.protocol.messages import PRINCIPAL_ID, ErrorCode, Message, MessageType, Side

__all__ = [
    "AUTH_FAILED_REASON",
    "MAX_RETRY_AFTER",
    "MOVED_CODE",
    "NONCE_SIZE",
    "THROTTLED_CODE",
    "THROTTLED_REASON",
    "WEAK_PARAMS_CODE",
    "ClientHandshake",
    "HandshakeState",
    "Role",
    "auth_message",
    "moved_body",
    "throttled_body",
    "valid_principal_id",
]

NONCE_SIZE = 24
AUTH_FAILED_REASON = "authentication failed"
THROTTLED_CODE = ErrorCode.THROTTLED  # the one code list: common.protocol.messages
THROTTLED_REASON = "too many failed attempts"
WEAK_PARAMS_CODE = "weak_params"  # a client's own refusal, never sent on the wire
MOVED_CODE = ErrorCode.MOVED
# A client waits at most this long on the server's word: a bad or hostile value must
# not park a charge point for days.
MAX_RETRY_AFTER = 3600


class Role(StrEnum):
    """Kind of principal authenticating."""

    MONITOR = "monitor"
    ENGINE = "engine"
    DRIVER = "driver"


class HandshakeState(StrEnum):
    """Where a handshake stands (client and server states share one table)."""

    IDLE = "idle"
    HELLO_SENT = "hello_sent"  # client
    PROOF_SENT = "proof_sent"  # client
    CHALLENGED = "challenged"  # server
    DONE = "done"
    FAILED = "failed"


_S = HandshakeState
_M = MessageType
# (side, state, message sent or received) -> next state. FAILED is reachable from anywhere.
_TRANSITIONS: Mapping[tuple[Side, HandshakeState, MessageType], HandshakeState] = {
    (Side.CLIENT, _S.IDLE, _M.HELLO): _S.HELLO_SENT,
    (Side.CLIENT, _S.HELLO_SENT, _M.CHALLENGE): _S.PROOF_SENT,
    (Side.CLIENT, _S.HELLO_SENT, _M.AUTH_FAILED): _S.FAILED,
    (Side.CLIENT, _S.PROOF_SENT, _M.WELCOME): _S.DONE,
    (Side.CLIENT, _S.PROOF_SENT, _M.AUTH_FAILED): _S.FAILED,
    (Side.SERVER, _S.IDLE, _M.HELLO): _S.CHALLENGED,
    (Side.SERVER, _S.CHALLENGED, _M.PROOF): _S.DONE,
}


def _next_state(side: Side, state: HandshakeState, msg_type: MessageType) -> HandshakeState:
    try:
        return _TRANSITIONS[(side, state, msg_type)]
    except KeyError:
        raise HandshakeError(
            "out_of_state", f"{msg_type} not allowed in state {state} ({side})"
        ) from None


def valid_principal_id(principal_id: object) -> bool:
    """True for 1-32 ASCII letters, digits, '-' or '_'."""
    return isinstance(principal_id, str) and PRINCIPAL_ID.fullmatch(principal_id) is not None


def throttled_body(retry_after: int) -> dict[str, Any]:
    """The AUTH_FAILED body refusing a login for ``retry_after`` s (raised to at least 1)."""
    return {
        "reason": THROTTLED_REASON,
        "code": THROTTLED_CODE,
        "retry_after": max(1, int(retry_after)),
    }


def moved_body(addr: str) -> dict[str, Any]:
    """The AUTH_FAILED body sending a CP's login to the Central that owns it (``addr``)."""
    return {"reason": "charge point is served by another Central", "code": MOVED_CODE, "addr": addr}


def _refusal(body: Mapping[str, Any]) -> HandshakeError:
    """The error an AUTH_FAILED body means: ``throttled`` or ``moved`` when well formed,
    else ``auth_failed``."""
    addr = body.get("addr")
    if body.get("code") == MOVED_CODE and isinstance(addr, str) and 0 < len(addr) <= 262:
        return HandshakeError(MOVED_CODE, f"served by the Central at {addr}", moved_to=addr)
    retry_after = body.get("retry_after")
    # bool is an int subclass; True is no number of seconds.
    if body.get("code") == THROTTLED_CODE and type(retry_after) is int and retry_after >= 1:
        retry_after = min(retry_after, MAX_RETRY_AFTER)
        return HandshakeError(
            THROTTLED_CODE,
            f"server delays logins after failed attempts; retry in {retry_after} s",
            retry_after=retry_after,
        )
    return HandshakeError("auth_failed", "server refused authentication")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def auth_message(
    role: Role,
    principal_id: str,
    client_nonce: bytes,
    server_nonce: bytes,
    salt: bytes,
    params: ScryptParams | None,
) -> bytes:
    """The canonical transcript both sides sign (ASCII, comma-separated ``key=value``).

    ``v=evcharging/1,role=R,id=I,cn=B64,sn=B64,s=B64,kdf=scrypt,n=N,r=R,p=P``; for an engine
    credential ``s=`` is empty and the tail is ``kdf=hkdf-sha256``. Base64 is standard with
    padding, re-encoded from the raw bytes, so no field can contain a comma.
    """
    kdf = (
        "kdf=hkdf-sha256"
        if params is None
        else f"kdf=scrypt,n={params.n},r={params.r},p={params.p}"
    )
    fields = (
        "v=evcharging/1",
        f"role={role}",
        f"id={principal_id}",
        f"cn={_b64(client_nonce)}",
        f"sn={_b64(server_nonce)}",
        f"s={_b64(salt)}",
        kdf,
    )
    return ",".join(fields).encode("ascii")


def _field(body: Mapping[str, Any], name: str, kind: type) -> Any:
    if name not in body:
        raise MessageError("missing_field", f"handshake body has no {name!r}")
    value = body[name]
    if type(value) is not kind:
        raise MessageError("bad_field", f"{name!r} must be {kind.__name__}")
    return value


def _b64_field(body: Mapping[str, Any], name: str, size: int | None = None) -> bytes:
    try:
        raw = base64.b64decode(_field(body, name, str), validate=True)
    except (binascii.Error, ValueError):
        raise MessageError("bad_field", f"{name!r} is not base64") from None
    if size is not None and len(raw) != size:
        raise MessageError("bad_field", f"{name!r} must be {size} bytes")
    return raw


class ClientHandshake:
    """Client side: ``start()`` → HELLO, ``receive(CHALLENGE)`` → PROOF, ``receive(WELCOME)``.

    Args:
        role: who we are; :attr:`Role.ENGINE` authenticates with ``session_key``, the
            other roles with ``secret``.
        principal_id: our id (1-32 letters, digits, '-', '_').
        secret: the principal's secret (monitor, driver).
        session_key: the session key handed over by the monitor (engine).
        clock: seconds since the epoch.
        rng: source of random bytes.
        min_n: refuse a CHALLENGE whose scrypt work is below ``n=min_n, r=8``
            (:func:`keys.cheaper_than`); the default is the production cost.

    Raises:
        HandshakeError: (remote=False) ``bad_principal`` (unknown role, invalid id) or
            ``bad_credentials``.
    """

    def __init__(
        self,
        role: Role,
        principal_id: str,
        secret: str | None = None,
        session_key: bytes | None = None,
        *,
        clock: Callable[[], float],
        rng: Callable[[int], bytes] = os.urandom,
        min_n: int = keys.CLIENT_MIN_N,
    ) -> None:
        if not valid_principal_id(principal_id) or role not in set(Role):
            raise HandshakeError("bad_principal", "invalid role or principal id", remote=False)
        engine = Role(role) is Role.ENGINE
        if (secret is None) == (session_key is None) or engine != (session_key is not None):
            raise HandshakeError(
                "bad_credentials", "engine needs session_key, other roles a secret", remote=False
            )
        self.role = Role(role)
        self.principal_id = principal_id
        self._secret = secret
        self._key = session_key
        self._clock = clock
        self._rng = rng
        self._min_n = min_n
        self._state = HandshakeState.IDLE
        self._nonce = b""
        self._auth = b""
        self._server_key = b""
        self._client_key = b""
        self._transcript = b""
        self._session_key: bytes | None = None

    @property
    def state(self) -> HandshakeState:
        """Current state."""
        return self._state

    @property
    def session_key(self) -> bytes | None:
        """The session key issued by the server, once the handshake is DONE."""
        return self._session_key

    def _message(self, msg_type: MessageType, seq: int, body: dict[str, Any]) -> Message:
        return Message(msg_type, seq, self._clock(), body)

    def _advance(self, msg_type: MessageType) -> None:
        try:
            self._state = _next_state(Side.CLIENT, self._state, msg_type)
        except HandshakeError:
            self._state = HandshakeState.FAILED
            raise

    def start(self) -> Message:
        """Return the HELLO to send (seq 1)."""
        self._advance(MessageType.HELLO)
        self._nonce = self._rng(NONCE_SIZE)
        body = {"role": str(self.role), "id": self.principal_id, "nonce": _b64(self._nonce)}
        return self._message(MessageType.HELLO, 1, body)

    def receive(self, msg: Message) -> Message | None:
        """Feed a server message; return the PROOF after CHALLENGE, None after WELCOME.

        Raises:
            HandshakeError: ``auth_failed`` (AUTH_FAILED received, bad server signature or
                unusable wrapped key), ``weak_params`` (scrypt cheaper than ``min_n``
                allows: no proof is computed), ``throttled`` (AUTH_FAILED saying the
                server delays logins; ``retry_after`` is 1 to :data:`MAX_RETRY_AFTER` s),
                ``out_of_state``.
            MessageError: a malformed CHALLENGE or WELCOME body.
        """
        self._advance(msg.type)
        try:
            if msg.type is MessageType.CHALLENGE:
                return self._on_challenge(msg.body)
            if msg.type is MessageType.WELCOME:
                self._on_welcome(msg.body)
                return None
            raise _refusal(msg.body)
        except (HandshakeError, MessageError):
            self._state = HandshakeState.FAILED
            raise

    def _on_challenge(self, body: Mapping[str, Any]) -> Message:
        server_nonce = _b64_field(body, "nonce", NONCE_SIZE)
        params: ScryptParams | None = None
        salt = b""
        if self._key is not None:
            root = keys.root_from_key(self._key)
        else:
            salt = _b64_field(body, "salt")
            try:
                params = ScryptParams(
                    _field(body, "n", int), _field(body, "r", int), _field(body, "p", int)
                )
            except ValueError as exc:
                raise MessageError("bad_field", f"scrypt parameters refused: {exc}") from None
            if keys.cheaper_than(params, self._min_n):
                # Checked before any work: the proof would be cheap to brute-force offline.
                raise HandshakeError(
                    WEAK_PARAMS_CODE,
                    f"scrypt n={params.n}, r={params.r}; the floor is n={self._min_n} "
                    f"at r={keys.DEFAULT_PARAMS.r}",
                )
            assert self._secret is not None
            root = keys.salted_key(self._secret, salt, params)
        self._auth = auth_message(
            self.role, self.principal_id, self._nonce, server_nonce, salt, params
        )
        self._client_key = keys.client_key(root)
        self._server_key = keys.server_key(root)
        self._transcript = self._nonce + server_nonce
        proof = keys.client_proof(self._client_key, self._auth)
        return self._message(MessageType.PROOF, 2, {"proof": _b64(proof)})

    def _on_welcome(self, body: Mapping[str, Any]) -> None:
        signature = _b64_field(body, "signature")
        wrapped = _field(body, "wrapped_key", str)
        expected = keys.server_signature(self._server_key, self._auth)
        if not hmac.compare_digest(signature, expected):
            raise HandshakeError("auth_failed", "server signature invalid")
        try:
            self._session_key = keys.unwrap_key(wrapped, self._client_key, self._transcript)
        except CryptoError:
            raise HandshakeError("auth_failed", "wrapped session key invalid") from None
