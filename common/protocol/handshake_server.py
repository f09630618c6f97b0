"""The server's side of the handshake: HELLO → CHALLENGE, PROOF → WELCOME or AUTH_FAILED.

The messages, states and the transcript both sides sign are in
:mod:`common.protocol.handshake`; this module only answers them.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable, Mapping
from typing import Any

from common.protocol import keys
from common.protocol.errors import HandshakeError, MessageError
from common.protocol.handshake import (
    AUTH_FAILED_REASON,
    NONCE_SIZE,
    HandshakeState,
    Role,
    _b64,
    _b64_field,
    _field,
    _next_state,
    auth_message,
    valid_principal_id,
)
from common.protocol.keys import DEFAULT_PARAMS, ScryptParams, Verifier
from common.protocol.messages import Message, MessageType, Side

__all__ = ["ServerHandshake"]

_DECOY_INFO = b"evcharging/v1 decoy-salt"
# One random key per process: decoy salts stay the same across connections, so asking
# twice about an unknown principal looks like asking twice about a real one.
_PROCESS_DECOY_KEY = os.urandom(32)


class ServerHandshake:
    """Server side: ``receive(HELLO)`` → CHALLENGE, ``receive(PROOF)`` → WELCOME/AUTH_FAILED.

    Args:
        lookup: ``(role, id) -> Verifier | None``, called once, synchronously, at HELLO.
        clock: seconds since the epoch.
        rng: source of random bytes.
        timeout: seconds allowed between CHALLENGE and PROOF.
        session_key_factory: makes the session key issued on success.
        decoy_key: key of the fake salts for unknown principals; must be the same for all
            handshakes of a server (defaults to one random key per process).
        decoy_params: scrypt parameters announced for unknown principals; set them to
            those of real verifiers.
    """

    def __init__(
        self,
        lookup: Callable[[Role, str], Verifier | None],
        clock: Callable[[], float],
        rng: Callable[[int], bytes] = os.urandom,
        timeout: float = 30.0,
        session_key_factory: Callable[[], bytes] = keys.new_session_key,
        *,
        decoy_key: bytes | None = None,
        decoy_params: ScryptParams = DEFAULT_PARAMS,
    ) -> None:
        self._lookup = lookup
        self._clock = clock
        self._rng = rng
        self.timeout = timeout
        self._factory = session_key_factory
        self._decoy_key = _PROCESS_DECOY_KEY if decoy_key is None else decoy_key
        self._decoy_params = decoy_params
        self._state = HandshakeState.IDLE
        self._role: Role | None = None
        self._principal_id: str | None = None
        self._verifier: Verifier | None = None
        self._auth = b""
        self._transcript = b""
        self._challenged_at = 0.0
        self._client_key: bytes | None = None
        self._session_key: bytes | None = None
        self.failed_reason: str | None = None

    @property
    def state(self) -> HandshakeState:
        """Current state."""
        return self._state

    @property
    def role(self) -> Role | None:
        """Role claimed in HELLO (authenticated only once state is DONE)."""
        return self._role

    @property
    def principal_id(self) -> str | None:
        """Id claimed in HELLO (authenticated only once state is DONE)."""
        return self._principal_id

    @property
    def session_key(self) -> bytes | None:
        """The session key issued, once the handshake is DONE."""
        return self._session_key

    def _message(self, msg_type: MessageType, seq: int, body: dict[str, Any]) -> Message:
        return Message(msg_type, seq, self._clock(), body)

    def _failed(self, reason: str) -> None:
        self._state = HandshakeState.FAILED
        self.failed_reason = reason

    def check_timeout(self) -> None:
        """Let a server drop a peer that stays silent after its CHALLENGE.

        Raises:
            HandshakeError: ``expired`` once ``timeout`` has passed since the CHALLENGE.
        """
        if self._state is HandshakeState.CHALLENGED and self._expired():
            self._failed("expired")
            raise HandshakeError("expired", "no PROOF before the challenge expired")

    def _expired(self) -> bool:
        return self._clock() - self._challenged_at > self.timeout

    def receive(self, msg: Message) -> Message:
        """Feed a client message; return the reply to send.

        Returns:
            CHALLENGE after HELLO; WELCOME or AUTH_FAILED after PROOF (one AUTH_FAILED for
            every cause, the cause kept in :attr:`failed_reason`).

        Raises:
            HandshakeError: ``out_of_state`` (any message the state does not allow).
            MessageError: a malformed HELLO body.
        """
        try:
            next_state = _next_state(Side.SERVER, self._state, msg.type)
        except HandshakeError:
            self._failed("out of state")
            raise
        if msg.type is MessageType.HELLO:
            try:
                reply = self._on_hello(msg.body)
            except MessageError:
                self._failed("malformed hello")
                raise
            self._state = next_state
            return reply
        return self._on_proof(msg.body)

    def _on_hello(self, body: Mapping[str, Any]) -> Message:
        try:
            role = Role(_field(body, "role", str))
        except ValueError:
            raise MessageError("bad_field", "unknown role") from None
        principal_id = _field(body, "id", str)
        if not valid_principal_id(principal_id):
            raise MessageError("bad_field", "invalid principal id")
        client_nonce = _b64_field(body, "nonce", NONCE_SIZE)
        self._role, self._principal_id = role, principal_id
        verifier = self._lookup(role, principal_id)
        engine = role is Role.ENGINE
        if verifier is not None and verifier.from_session_key == engine:
            self._verifier = verifier
            salt, params = verifier.salt, verifier.params
        else:
            # Unknown (or wrong kind): answer exactly as for a real principal.
            self._verifier = None
            salt, params = self._decoy(role, principal_id)
        server_nonce = self._rng(NONCE_SIZE)
        self._auth = auth_message(role, principal_id, client_nonce, server_nonce, salt, params)
        self._transcript = client_nonce + server_nonce
        self._challenged_at = self._clock()
        body_out: dict[str, Any] = {"nonce": _b64(server_nonce)}
        if params is not None:
            body_out.update(salt=_b64(salt), n=params.n, r=params.r, p=params.p)
        return self._message(MessageType.CHALLENGE, 1, body_out)

    def _decoy(self, role: Role, principal_id: str) -> tuple[bytes, ScryptParams | None]:
        if role is Role.ENGINE:
            return b"", None
        label = b"\x00".join((_DECOY_INFO, role.encode(), principal_id.encode()))
        salt = hmac.digest(self._decoy_key, label, "sha256")[: keys.SALT_SIZE]
        return salt, self._decoy_params

    def _on_proof(self, body: Mapping[str, Any]) -> Message:
        reason = self._check_proof(body)
        if reason is not None:
            self._failed(reason)
            return self._message(MessageType.AUTH_FAILED, 2, {"reason": AUTH_FAILED_REASON})
        assert self._verifier is not None and self._client_key is not None
        session_key = self._factory()
        wrapped = keys.wrap_key(session_key, self._client_key, self._transcript, now=self._clock())
        signature = keys.server_signature(self._verifier.server_key, self._auth)
        self._session_key = session_key
        self._state = HandshakeState.DONE
        self.failed_reason = None
        body_out = {"signature": _b64(signature), "wrapped_key": wrapped.decode("ascii")}
        return self._message(MessageType.WELCOME, 2, body_out)

    def _check_proof(self, body: Mapping[str, Any]) -> str | None:
        """Return why the PROOF fails, or None (and keep client_key) when it is good."""
        if self._expired():
            return "expired"
        try:
            proof = _b64_field(body, "proof", keys.KEY_SIZE)
        except MessageError:
            return "malformed proof"
        # Same work for an unknown principal, so timing does not tell it apart.
        stored = self._verifier.stored_key if self._verifier else b"\x00" * keys.KEY_SIZE
        client = keys.recover_client_key(proof, stored, self._auth)
        if self._verifier is None:
            return "unknown principal"
        if client is None:
            return "bad proof"
        self._client_key = client
        return None
