"""Credential crypto: verifiers, secret checks, engine keys, session-key wrapping."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from common.protocol.errors import CryptoError
from common.protocol.keys import (
    DEFAULT_PARAMS,
    ScryptParams,
    check_secret,
    client_key,
    client_proof,
    make_verifier,
    new_secret,
    new_session_key,
    recover_client_key,
    root_from_key,
    salted_key,
    server_key,
    unwrap_key,
    verifier_from_key,
    wrap_key,
)


def test_default_params_and_verifier_with_real_cost():
    assert ScryptParams(n=2**14, r=8, p=1) == DEFAULT_PARAMS
    verifier = make_verifier("correct horse")
    assert verifier.params == DEFAULT_PARAMS
    assert len(verifier.salt) == 16
    assert check_secret("correct horse", verifier)
    assert not check_secret("correct horse ", verifier)


def test_verifier_matches_the_scram_construction(fast_params):
    salt = b"s" * 16
    verifier = make_verifier("pw", fast_params, salt)
    root = hashlib.scrypt(
        b"pw", salt=salt, n=fast_params.n, r=fast_params.r, p=fast_params.p, dklen=32
    )
    assert salted_key("pw", salt, fast_params) == root
    ck = hmac.digest(root, b"Client Key", "sha256")
    assert verifier.stored_key == hashlib.sha256(ck).digest()
    assert verifier.server_key == hmac.digest(root, b"Server Key", "sha256") == server_key(root)
    assert not verifier.from_session_key


def test_new_secret_is_random_and_url_safe():
    first, second = new_secret(), new_secret()
    assert first != second
    assert len(first) == 43
    assert first.replace("-", "").replace("_", "").isalnum()


def test_proof_recovers_client_key_only_with_right_secret(fast_params):
    verifier = make_verifier("pw", fast_params)
    auth = b"transcript"
    ck = client_key(salted_key("pw", verifier.salt, fast_params))
    assert recover_client_key(client_proof(ck, auth), verifier.stored_key, auth) == ck
    wrong = client_key(salted_key("pW", verifier.salt, fast_params))
    assert recover_client_key(client_proof(wrong, auth), verifier.stored_key, auth) is None
    assert recover_client_key(client_proof(ck, auth), verifier.stored_key, b"other") is None
    assert recover_client_key(b"short", verifier.stored_key, auth) is None


@pytest.mark.parametrize(
    "kwargs",
    [{"n": 1000}, {"n": 1}, {"n": 2**21}, {"r": 0}, {"p": 0}, {"p": 17}, {"n": 2**20, "r": 8}],
)
def test_params_out_of_range_are_refused(kwargs):
    with pytest.raises(ValueError):
        ScryptParams(**kwargs)


def test_engine_verifier_from_session_key():
    key = new_session_key()
    verifier = verifier_from_key(key)
    assert verifier.from_session_key
    assert verifier.salt == b""
    assert verifier.stored_key == hashlib.sha256(client_key(root_from_key(key))).digest()
    assert verifier_from_key(key) == verifier
    assert verifier_from_key(new_session_key()) != verifier
    assert not check_secret(key.decode(), verifier)


def test_wrap_unwrap_round_trip():
    session, ck, salt = new_session_key(), b"k" * 32, b"n" * 48
    token = wrap_key(session, ck, salt, now=1000)
    assert token.startswith(b"gAAAAA")
    assert unwrap_key(token, ck, salt) == session
    assert unwrap_key(token.decode(), ck, salt) == session


@pytest.mark.parametrize(
    "mutate",
    [
        lambda t, ck, s: (t, b"K" * 32, s),  # wrong client key
        lambda t, ck, s: (t, ck, b"m" * 48),  # another handshake's nonces
        lambda t, ck, s: (t[:-4] + b"AAAA", ck, s),  # tampered
        lambda t, ck, s: ("é", ck, s),  # garbage
    ],
)
def test_unwrap_failures_are_one_crypto_error(mutate):
    session, ck, salt = new_session_key(), b"k" * 32, b"n" * 48
    token = wrap_key(session, ck, salt)
    with pytest.raises(CryptoError) as info:
        unwrap_key(*mutate(token, ck, salt))
    assert (info.value.code, str(info.value)) == ("invalid_token", "invalid token")


def test_unwrap_refuses_a_payload_that_is_not_a_key():
    ck, salt = b"k" * 32, b"n" * 48
    with pytest.raises(CryptoError):
        unwrap_key(wrap_key(b"not a fernet key", ck, salt), ck, salt)
