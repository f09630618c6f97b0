"""Credential crypto: SCRAM (RFC 5802) keys over scrypt, engine keys over HKDF, key wrapping.

A principal's secret is stored only as a :class:`Verifier` (salt, scrypt parameters,
``stored_key``, ``server_key``); the handshake proves knowledge of the secret without sending
it, and the verifier alone is not enough to pass the handshake as the client.

    root        = scrypt(secret, salt, n, r, p, dklen=32)       (or HKDF of a session key)
    client_key  = HMAC-SHA256(root, "Client Key")
    stored_key  = SHA-256(client_key)
    server_key  = HMAC-SHA256(root, "Server Key")
    proof       = client_key XOR HMAC-SHA256(stored_key, auth_message)
    signature   = HMAC-SHA256(server_key, auth_message)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from common.protocol.errors import CryptoError

__all__ = [
    "CLIENT_MIN_N",
    "DEFAULT_PARAMS",
    "KEY_SIZE",
    "SALT_SIZE",
    "ScryptParams",
    "Verifier",
    "cheaper_than",
    "check_secret",
    "client_key",
    "client_proof",
    "client_signature",
    "make_verifier",
    "new_secret",
    "new_session_key",
    "recover_client_key",
    "root_from_key",
    "salted_key",
    "scrypt_n_allowed",
    "server_key",
    "server_signature",
    "stored_key",
    "unwrap_key",
    "verifier_from_key",
    "wrap_key",
]

KEY_SIZE = 32
SALT_SIZE = 16
ENGINE_AUTH_INFO = b"evcharging/v1 engine-auth"
KEY_WRAP_INFO = b"evcharging/v1 session-key-wrap"
# A peer chooses the parameters in a CHALLENGE: cap what a client will spend on them.
_MAX_N = 2**20
_MAX_R = 32
_MAX_P = 16
_MAX_MEMORY = 2**27  # bytes: 128 * r * n


def scrypt_n_allowed(n: int) -> bool:
    """True for a power of two in [2, 2**20]: the scrypt costs this protocol accepts."""
    return 2 <= n <= _MAX_N and not n & (n - 1)


@dataclass(frozen=True)
class ScryptParams:
    """Cost of the scrypt hash; ``n`` a power of two (CPU/memory), ``r`` block size, ``p``.

    Raises:
        ValueError: values out of the accepted range (which bounds a peer's demands).
    """

    n: int = 2**14
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        for name in ("n", "r", "p"):
            if type(getattr(self, name)) is not int:
                raise ValueError(f"scrypt {name} must be an int")
        if not scrypt_n_allowed(self.n):
            raise ValueError(f"scrypt n must be a power of two in [2, {_MAX_N}]")
        if not 1 <= self.r <= _MAX_R or not 1 <= self.p <= _MAX_P:
            raise ValueError(f"scrypt r must be in [1, {_MAX_R}] and p in [1, {_MAX_P}]")
        if 128 * self.r * self.n > _MAX_MEMORY:
            raise ValueError(f"scrypt n * r needs more than {_MAX_MEMORY} bytes")


DEFAULT_PARAMS = ScryptParams()
# ...and refuses parameters cheaper than n=2**14, r=8: a fake Central asking for n=2
# would get a proof anyone can brute-force offline. Tests lower it (EV_SCRYPT_MIN_N).
CLIENT_MIN_N = DEFAULT_PARAMS.n


def cheaper_than(params: ScryptParams, min_n: int = CLIENT_MIN_N) -> bool:
    """True if one guess at ``params`` costs less than at ``n=min_n, r=8``.

    scrypt's time and memory both grow with ``n * r`` (``p`` only adds time), so the
    floor is on that product: ``n=2**15, r=4`` passes, ``n=2**14, r=1`` does not.
    """
    return params.n * params.r < min_n * DEFAULT_PARAMS.r


@dataclass(frozen=True)
class Verifier:
    """What the database keeps for a principal, never the secret itself.

    ``params is None`` marks an engine credential derived from a session key
    (:func:`verifier_from_key`); its salt is empty.
    """

    salt: bytes
    params: ScryptParams | None
    stored_key: bytes
    server_key: bytes

    @property
    def from_session_key(self) -> bool:
        """True for an engine credential derived from a session key."""
        return self.params is None


def _hmac(key: bytes, data: bytes) -> bytes:
    return hmac.digest(key, data, "sha256")


def _hkdf(ikm: bytes, info: bytes, salt: bytes | None = None) -> bytes:
    return HKDF(algorithm=SHA256(), length=KEY_SIZE, salt=salt, info=info).derive(ikm)


def salted_key(secret: str, salt: bytes, params: ScryptParams = DEFAULT_PARAMS) -> bytes:
    """The slow hash: scrypt of the UTF-8 secret (compared byte for byte, no normalisation)."""
    memory = 128 * params.r * (params.n + params.p + 2) + 2**16
    return hashlib.scrypt(
        secret.encode("utf-8"),
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=memory,
        dklen=KEY_SIZE,
    )


def client_key(root: bytes) -> bytes:
    """HMAC-SHA256(root, "Client Key")."""
    return _hmac(root, b"Client Key")


def stored_key(client: bytes) -> bytes:
    """SHA-256(client_key)."""
    return hashlib.sha256(client).digest()


def server_key(root: bytes) -> bytes:
    """HMAC-SHA256(root, "Server Key")."""
    return _hmac(root, b"Server Key")


def _verifier(root: bytes, salt: bytes, params: ScryptParams | None) -> Verifier:
    return Verifier(salt, params, stored_key(client_key(root)), server_key(root))


def new_secret() -> str:
    """A fresh random secret for a principal (43 URL-safe characters, 256 bits)."""
    return secrets.token_urlsafe(32)


def make_verifier(
    secret: str, params: ScryptParams = DEFAULT_PARAMS, salt: bytes | None = None
) -> Verifier:
    """Hash ``secret`` into the verifier the database stores (random 16-byte salt)."""
    salt = secrets.token_bytes(SALT_SIZE) if salt is None else salt
    return _verifier(salted_key(secret, salt, params), salt, params)


def check_secret(secret: str, verifier: Verifier) -> bool:
    """Tell, in constant time, whether ``secret`` matches a scrypt ``verifier``.

    Always False for a session-key verifier (an engine has no secret).
    """
    if verifier.params is None:
        return False
    root = salted_key(secret, verifier.salt, verifier.params)
    return hmac.compare_digest(stored_key(client_key(root)), verifier.stored_key)


def root_from_key(session_key: bytes) -> bytes:
    """Client-side root for an engine: HKDF-SHA256(session_key, info="...engine-auth")."""
    return _hkdf(session_key, ENGINE_AUTH_INFO)


def verifier_from_key(session_key: bytes) -> Verifier:
    """Verifier letting an engine authenticate with the session key its monitor got."""
    return _verifier(root_from_key(session_key), b"", None)


def client_signature(stored: bytes, auth_message: bytes) -> bytes:
    """HMAC-SHA256(stored_key, auth_message)."""
    return _hmac(stored, auth_message)


def _xor(left: bytes, right: bytes) -> bytes:
    return (int.from_bytes(left, "big") ^ int.from_bytes(right, "big")).to_bytes(len(left), "big")


def client_proof(client: bytes, auth_message: bytes) -> bytes:
    """client_key XOR HMAC-SHA256(stored_key, auth_message)."""
    return _xor(client, client_signature(stored_key(client), auth_message))


def recover_client_key(proof: bytes, stored: bytes, auth_message: bytes) -> bytes | None:
    """Server side: undo the XOR and return client_key if it hashes to ``stored``, else None."""
    if len(proof) != KEY_SIZE:
        return None
    candidate = _xor(proof, client_signature(stored, auth_message))
    return candidate if hmac.compare_digest(stored_key(candidate), stored) else None


def server_signature(server: bytes, auth_message: bytes) -> bytes:
    """HMAC-SHA256(server_key, auth_message): proves the server holds the verifier."""
    return _hmac(server, auth_message)


def new_session_key() -> bytes:
    """A fresh Fernet key (44 URL-safe base64 bytes)."""
    return Fernet.generate_key()


def _wrapping_fernet(client: bytes, transcript_salt: bytes) -> Fernet:
    derived = _hkdf(client, KEY_WRAP_INFO, salt=transcript_salt)
    return Fernet(base64.urlsafe_b64encode(derived))


def wrap_key(
    session_key: bytes, client: bytes, transcript_salt: bytes, *, now: float = 0.0
) -> bytes:
    """Encrypt ``session_key`` under a key only the authenticated client can derive.

    Args:
        session_key: the Fernet key to hand over.
        client: the client_key recovered from the proof.
        transcript_salt: client nonce + server nonce, binding the token to this handshake.
        now: timestamp written in the token (not checked on unwrap).

    Returns:
        A Fernet token (ASCII bytes).
    """
    return _wrapping_fernet(client, transcript_salt).encrypt_at_time(session_key, int(now))


def unwrap_key(token: bytes | str, client: bytes, transcript_salt: bytes) -> bytes:
    """Inverse of :func:`wrap_key`; the result is checked to be a Fernet key.

    Raises:
        CryptoError: ``invalid_token`` for any failure.
    """
    try:
        key = _wrapping_fernet(client, transcript_salt).decrypt(token)
        Fernet(key)
    except (InvalidToken, ValueError, TypeError):
        raise CryptoError() from None
    return key
