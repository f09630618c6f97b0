"""Handshake: both sides in memory, fixed clock, every failure path."""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest

from common.protocol.errors import HandshakeError, MessageError
from common.protocol.handshake import (
    MAX_RETRY_AFTER,
    THROTTLED_CODE,
    ClientHandshake,
    HandshakeState,
    Role,
    auth_message,
    moved_body,
    throttled_body,
)
from common.protocol.handshake_server import ServerHandshake
from common.protocol.keys import (
    DEFAULT_PARAMS,
    Verifier,
    make_verifier,
    new_session_key,
    verifier_from_key,
)
from common.protocol.messages import Message, MessageType
from tests.support.scrypt import CHEAP_SCRYPT

# The fast_params fixture's n: clients accept it (the default floor is 2**14).
FLOOR = CHEAP_SCRYPT.n

SECRET = "monitor-secret"
DECOY = b"d" * 32


class Directory:
    """A fake credential store that counts lookups."""

    def __init__(self, entries: dict[tuple[Role, str], Verifier]) -> None:
        self.entries = entries
        self.calls: list[tuple[Role, str]] = []

    def __call__(self, role: Role, principal_id: str) -> Verifier | None:
        self.calls.append((role, principal_id))
        return self.entries.get((role, principal_id))


@pytest.fixture
def directory(fast_params):
    return Directory({(Role.MONITOR, "CP-1"): make_verifier(SECRET, fast_params)})


def server(directory, clock, fast_params, **kwargs):
    return ServerHandshake(directory, clock, decoy_key=DECOY, decoy_params=fast_params, **kwargs)


def run(client: ClientHandshake, srv: ServerHandshake) -> Message:
    """HELLO, CHALLENGE, PROOF; return the server's final answer."""
    challenge = srv.receive(client.start())
    proof = client.receive(challenge)
    assert proof is not None
    return srv.receive(proof)


def test_right_secret_gives_both_sides_the_same_key(directory, clock, fast_params):
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params)
    hello = client.start()
    assert (hello.type, hello.seq, hello.ts) == (MessageType.HELLO, 1, clock.now)
    assert hello.body["role"] == "monitor" and hello.body["id"] == "CP-1"
    assert len(base64.b64decode(hello.body["nonce"])) == 24
    challenge = srv.receive(hello)
    assert (challenge.type, challenge.seq) == (MessageType.CHALLENGE, 1)
    assert set(challenge.body) == {"nonce", "salt", "n", "r", "p"}
    assert (challenge.body["n"], challenge.body["r"], challenge.body["p"]) == (
        fast_params.n,
        fast_params.r,
        fast_params.p,
    )
    assert srv.state is HandshakeState.CHALLENGED
    proof = client.receive(challenge)
    assert proof is not None and (proof.type, proof.seq) == (MessageType.PROOF, 2)
    assert client.state is HandshakeState.PROOF_SENT
    welcome = srv.receive(proof)
    assert (welcome.type, welcome.seq) == (MessageType.WELCOME, 2)
    assert client.receive(welcome) is None
    assert client.state is srv.state is HandshakeState.DONE
    assert client.session_key == srv.session_key is not None
    assert (srv.role, srv.principal_id, srv.failed_reason) == (Role.MONITOR, "CP-1", None)
    assert directory.calls == [(Role.MONITOR, "CP-1")]


def test_default_scrypt_cost_handshake(clock):
    directory = Directory({(Role.DRIVER, "alice"): make_verifier("pw")})
    client = ClientHandshake(Role.DRIVER, "alice", "pw", clock=clock, min_n=FLOOR)
    srv = ServerHandshake(directory, clock)
    client.receive(run(client, srv))
    assert client.session_key == srv.session_key
    assert srv.session_key is not None and len(srv.session_key) == 44


def test_each_handshake_issues_a_fresh_key(directory, clock, fast_params):
    keys = set()
    for _ in range(2):
        client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
        client.receive(run(client, server(directory, clock, fast_params)))
        keys.add(client.session_key)
    assert len(keys) == 2


def test_wrong_secret_fails_on_both_sides(directory, clock, fast_params):
    client = ClientHandshake(Role.MONITOR, "CP-1", "guess", clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params)
    answer = run(client, srv)
    assert (answer.type, answer.seq) == (MessageType.AUTH_FAILED, 2)
    assert answer.body == {"reason": "authentication failed"}
    assert (srv.state, srv.failed_reason, srv.session_key) == (
        HandshakeState.FAILED,
        "bad proof",
        None,
    )
    with pytest.raises(HandshakeError) as info:
        client.receive(answer)
    assert (info.value.code, info.value.remote) == ("auth_failed", True)
    assert client.state is HandshakeState.FAILED and client.session_key is None


def test_unknown_principal_looks_like_wrong_secret(directory, clock, fast_params):
    def attempt(principal_id: str) -> tuple[Message, Message, ServerHandshake]:
        client = ClientHandshake(Role.MONITOR, principal_id, "guess", clock=clock, min_n=FLOOR)
        srv = server(directory, clock, fast_params)
        challenge = srv.receive(client.start())
        proof = client.receive(challenge)
        assert proof is not None
        return challenge, srv.receive(proof), srv

    real_challenge, real_answer, _ = attempt("CP-1")
    ghost_challenge, ghost_answer, srv = attempt("CP-404")
    again_challenge, _, _ = attempt("CP-404")
    assert set(ghost_challenge.body) == set(real_challenge.body)
    assert len(base64.b64decode(ghost_challenge.body["salt"])) == 16
    assert ghost_challenge.body["salt"] == again_challenge.body["salt"]  # stable, like a real one
    assert ghost_challenge.body["salt"] != attempt("CP-405")[0].body["salt"]
    assert ghost_answer == real_answer
    assert srv.failed_reason == "unknown principal"


def test_verifier_of_the_wrong_kind_is_refused(clock, fast_params):
    key = new_session_key()
    directory = Directory(
        {
            (Role.ENGINE, "CP-1"): make_verifier("pw", fast_params),
            (Role.MONITOR, "CP-1"): verifier_from_key(key),
        }
    )
    engine = ClientHandshake(Role.ENGINE, "CP-1", session_key=key, clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params)
    assert run(engine, srv).type is MessageType.AUTH_FAILED
    monitor = ClientHandshake(Role.MONITOR, "CP-1", "pw", clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params)
    assert run(monitor, srv).type is MessageType.AUTH_FAILED


def test_replayed_proof_fails_in_a_new_handshake(directory, clock, fast_params):
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params)
    hello = client.start()
    proof = client.receive(srv.receive(hello))
    assert proof is not None
    assert srv.receive(proof).type is MessageType.WELCOME
    # An eavesdropper replays the same HELLO and PROOF: the server's nonce is new.
    attacker_srv = server(directory, clock, fast_params)
    attacker_srv.receive(hello)
    assert attacker_srv.receive(proof).type is MessageType.AUTH_FAILED
    assert attacker_srv.failed_reason == "bad proof"


def _welcome(directory, clock, fast_params) -> tuple[ClientHandshake, Message]:
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    welcome = run(client, server(directory, clock, fast_params))
    assert welcome.type is MessageType.WELCOME
    return client, welcome


def test_tampered_wrapped_key_fails(directory, clock, fast_params):
    client, welcome = _welcome(directory, clock, fast_params)
    token = welcome.body["wrapped_key"]
    flipped = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    with pytest.raises(HandshakeError) as info:
        client.receive(replace(welcome, body={**welcome.body, "wrapped_key": flipped}))
    assert info.value.code == "auth_failed"
    assert client.session_key is None and client.state is HandshakeState.FAILED


def test_bad_server_signature_fails(directory, clock, fast_params):
    client, welcome = _welcome(directory, clock, fast_params)
    forged = base64.b64encode(b"\x00" * 32).decode()
    with pytest.raises(HandshakeError) as info:
        client.receive(replace(welcome, body={**welcome.body, "signature": forged}))
    assert info.value.code == "auth_failed"
    assert client.session_key is None


def test_server_without_the_server_key_cannot_pass_as_central(clock, fast_params):
    # Someone holding only stored_key can check the proof and wrap a key, but not sign.
    real = make_verifier(SECRET, fast_params)
    stolen = replace(real, server_key=b"\x00" * 32)
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    impostor = server(Directory({(Role.MONITOR, "CP-1"): stolen}), clock, fast_params)
    welcome = run(client, impostor)
    assert welcome.type is MessageType.WELCOME
    with pytest.raises(HandshakeError) as info:
        client.receive(welcome)
    assert info.value.code == "auth_failed"
    assert client.session_key is None


def test_expired_challenge_fails(directory, clock, fast_params):
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params, timeout=30.0)
    proof = client.receive(srv.receive(client.start()))
    assert proof is not None
    clock.advance(30.5)
    answer = srv.receive(proof)
    assert answer.type is MessageType.AUTH_FAILED
    assert srv.failed_reason == "expired"


def test_proof_just_within_timeout_succeeds(directory, clock, fast_params):
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params, timeout=30.0)
    proof = client.receive(srv.receive(client.start()))
    assert proof is not None
    clock.advance(30.0)
    srv.check_timeout()
    assert srv.receive(proof).type is MessageType.WELCOME


def test_check_timeout_lets_a_server_drop_a_silent_peer(directory, clock, fast_params):
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params, timeout=5.0)
    srv.receive(client.start())
    clock.advance(6)
    with pytest.raises(HandshakeError) as info:
        srv.check_timeout()
    assert info.value.code == "expired"
    assert (srv.state, srv.failed_reason) == (HandshakeState.FAILED, "expired")


def test_server_out_of_state(directory, clock, fast_params):
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params)
    with pytest.raises(HandshakeError) as info:
        srv.receive(Message(MessageType.PROOF, 1, 0.0, {"proof": "AAAA"}))
    assert (info.value.code, info.value.remote) == ("out_of_state", True)
    assert srv.state is HandshakeState.FAILED

    srv = server(directory, clock, fast_params)
    hello = client.start()
    srv.receive(hello)
    with pytest.raises(HandshakeError) as info:
        srv.receive(hello)
    assert info.value.code == "out_of_state"
    with pytest.raises(HandshakeError):
        srv.receive(hello)  # FAILED is final
    assert len(directory.calls) == 1


@pytest.mark.parametrize(
    "msg_type", [MessageType.WELCOME, MessageType.CHALLENGE, MessageType.HEARTBEAT]
)
def test_server_refuses_non_client_messages(directory, clock, fast_params, msg_type):
    with pytest.raises(HandshakeError):
        server(directory, clock, fast_params).receive(Message(msg_type, 1, 0.0, {}))


def test_client_out_of_state(directory, clock, fast_params):
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    challenge = server(directory, clock, fast_params).receive(
        ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR).start()
    )
    with pytest.raises(HandshakeError) as info:
        client.receive(challenge)  # before start()
    assert info.value.code == "out_of_state"

    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    client.start()
    with pytest.raises(HandshakeError) as info:
        client.receive(Message(MessageType.WELCOME, 2, 0.0, {}))
    assert info.value.code == "out_of_state"

    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    client.start()
    with pytest.raises(HandshakeError):
        client.start()


def test_auth_failed_right_after_hello(clock):
    client = ClientHandshake(Role.DRIVER, "bob", "pw", clock=clock, min_n=FLOOR)
    client.start()
    with pytest.raises(HandshakeError) as info:
        client.receive(Message(MessageType.AUTH_FAILED, 1, 0.0, {"reason": "x"}))
    assert info.value.code == "auth_failed"


def _throttled(body, *, after_challenge=False, clock=None, directory=None, params=None):
    """Feed a crafted AUTH_FAILED to a client right after HELLO (or after its PROOF)."""
    if after_challenge:
        client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
        challenge = server(directory, clock, params).receive(client.start())
        assert client.receive(challenge) is not None
        seq = 2
    else:
        client = ClientHandshake(Role.DRIVER, "bob", "pw", clock=clock, min_n=FLOOR)
        client.start()
        seq = 1
    with pytest.raises(HandshakeError) as info:
        client.receive(Message(MessageType.AUTH_FAILED, seq, 0.0, body))
    assert client.state is HandshakeState.FAILED and client.session_key is None
    return info.value


def test_throttled_body_is_the_wire_form():
    assert THROTTLED_CODE == "throttled"
    assert throttled_body(7) == {
        "reason": "too many failed attempts",
        "code": "throttled",
        "retry_after": 7,
    }
    assert throttled_body(0)["retry_after"] == 1


@pytest.mark.parametrize("after_challenge", [False, True])
def test_throttled_refusal_carries_its_delay(directory, clock, fast_params, after_challenge):
    error = _throttled(
        throttled_body(42),
        after_challenge=after_challenge,
        clock=clock,
        directory=directory,
        params=fast_params,
    )
    assert (error.code, error.retry_after, error.remote) == ("throttled", 42, True)


def test_plain_auth_failed_has_no_delay(clock):
    error = _throttled({"reason": "authentication failed"}, clock=clock)
    assert (error.code, error.retry_after) == ("auth_failed", None)


def test_throttled_delay_is_clamped(clock):
    error = _throttled({"code": "throttled", "retry_after": 10**9}, clock=clock)
    assert (error.code, error.retry_after) == ("throttled", MAX_RETRY_AFTER)
    assert MAX_RETRY_AFTER == 3600


@pytest.mark.parametrize(
    "body",
    [
        {"code": "throttled"},
        {"code": "throttled", "retry_after": 0},
        {"code": "throttled", "retry_after": -5},
        {"code": "throttled", "retry_after": 2.5},
        {"code": "throttled", "retry_after": "30"},
        {"code": "throttled", "retry_after": True},
        {"code": "throttled", "retry_after": None},
        {"code": "THROTTLED", "retry_after": 30},
        {"code": "other", "retry_after": 30},
        {"reason": "too many failed attempts", "retry_after": 30},  # today's server
    ],
)
def test_malformed_throttled_refusal_is_a_plain_auth_failure(clock, body):
    error = _throttled(body, clock=clock)
    assert (error.code, error.retry_after) == ("auth_failed", None)


def test_engine_authenticates_with_its_session_key(clock, fast_params):
    key = new_session_key()
    directory = Directory({(Role.ENGINE, "CP-1"): verifier_from_key(key)})
    client = ClientHandshake(Role.ENGINE, "CP-1", session_key=key, clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params)
    challenge = srv.receive(client.start())
    assert set(challenge.body) == {"nonce"}
    proof = client.receive(challenge)
    assert proof is not None
    assert client.receive(srv.receive(proof)) is None
    assert client.session_key == srv.session_key != key


def test_engine_with_a_wrong_or_unknown_key_fails(clock, fast_params):
    directory = Directory({(Role.ENGINE, "CP-1"): verifier_from_key(new_session_key())})
    for principal_id in ("CP-1", "CP-2"):
        client = ClientHandshake(
            Role.ENGINE, principal_id, session_key=new_session_key(), clock=clock, min_n=FLOOR
        )
        srv = server(directory, clock, fast_params)
        challenge = srv.receive(client.start())
        assert set(challenge.body) == {"nonce"}
        proof = client.receive(challenge)
        assert proof is not None
        assert srv.receive(proof).body == {"reason": "authentication failed"}


@pytest.mark.parametrize(
    "body",
    [
        {"role": "admin", "id": "x", "nonce": base64.b64encode(b"n" * 24).decode()},
        {"role": "monitor", "id": "bad id!", "nonce": base64.b64encode(b"n" * 24).decode()},
        {"role": "monitor", "id": "x" * 33, "nonce": base64.b64encode(b"n" * 24).decode()},
        {"role": "monitor", "id": "x", "nonce": base64.b64encode(b"n" * 8).decode()},
        {"role": "monitor", "id": "x", "nonce": "***"},
        {"role": "monitor", "nonce": base64.b64encode(b"n" * 24).decode()},
        {"role": "monitor", "id": 7, "nonce": base64.b64encode(b"n" * 24).decode()},
    ],
)
def test_malformed_hello_is_a_message_error(directory, clock, fast_params, body):
    srv = server(directory, clock, fast_params)
    with pytest.raises(MessageError):
        srv.receive(Message(MessageType.HELLO, 1, 0.0, body))
    assert srv.state is HandshakeState.FAILED
    assert directory.calls == []


@pytest.mark.parametrize("proof", ["not base64!", base64.b64encode(b"p" * 31).decode(), 5])
def test_malformed_proof_gets_the_same_auth_failed(directory, clock, fast_params, proof):
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    srv = server(directory, clock, fast_params)
    srv.receive(client.start())
    answer = srv.receive(Message(MessageType.PROOF, 2, 0.0, {"proof": proof}))
    assert answer.body == {"reason": "authentication failed"}
    assert srv.failed_reason == "malformed proof"


@pytest.mark.parametrize(
    "change", [{"n": 2**30}, {"n": 1000}, {"r": True}, {"salt": "%%"}, {"nonce": "AAAA"}]
)
def test_client_refuses_a_hostile_challenge(directory, clock, fast_params, change):
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock, min_n=FLOOR)
    challenge = server(directory, clock, fast_params).receive(client.start())
    with pytest.raises(MessageError) as info:
        client.receive(replace(challenge, body={**challenge.body, **change}))
    assert info.value.code == "bad_field"
    assert client.state is HandshakeState.FAILED


def test_client_constructor_checks_credentials(clock):
    with pytest.raises(HandshakeError) as info:
        ClientHandshake(Role.MONITOR, "bad id", "pw", clock=clock, min_n=FLOOR)
    assert (info.value.code, info.value.remote) == ("bad_principal", False)
    with pytest.raises(HandshakeError) as info:
        ClientHandshake("admin", "CP-1", "pw", clock=clock, min_n=FLOOR)  # type: ignore[arg-type]
    assert info.value.code == "bad_principal"
    for kwargs in (
        {"secret": "pw", "session_key": b"k"},
        {},
        {"secret": None, "session_key": new_session_key()},
    ):
        with pytest.raises(HandshakeError) as info:
            ClientHandshake(Role.MONITOR, "CP-1", clock=clock, **kwargs)
        assert info.value.code == "bad_credentials"
    with pytest.raises(HandshakeError):
        ClientHandshake(Role.ENGINE, "CP-1", "pw", clock=clock, min_n=FLOOR)


def test_auth_message_is_canonical():
    got = auth_message(Role.MONITOR, "CP-1", b"\x00" * 24, b"\xff" * 24, b"salt", DEFAULT_PARAMS)
    assert got == (
        b"v=evcharging/1,role=monitor,id=CP-1,cn=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,"
        b"sn=////////////////////////////////,s=c2FsdA==,kdf=scrypt,n=16384,r=8,p=1"
    )
    engine = auth_message(Role.ENGINE, "CP-1", b"a" * 24, b"b" * 24, b"", None)
    assert engine.endswith(b",s=,kdf=hkdf-sha256")
    assert (
        auth_message(Role.MONITOR, "CP-1", b"\x00" * 24, b"\xff" * 24, b"salt", CHEAP_SCRYPT) != got
    )


def _challenge(n: int, r: int = 8) -> Message:
    body = {"nonce": base64.b64encode(b"s" * 24).decode(), "salt": "c2FsdA==", "n": n, "r": r}
    return Message(MessageType.CHALLENGE, 1, 0.0, {**body, "p": 1})


@pytest.mark.parametrize(("n", "r"), [(2, 8), (2**13, 8), (2**14, 1), (2**16, 1)])
def test_a_client_refuses_a_cheap_challenge_before_any_work(clock, n, r):
    # A fake Central asking for n=2 would get a proof it can brute-force offline.
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock)  # production floor
    client.start()
    with pytest.raises(HandshakeError) as info:
        client.receive(_challenge(n, r))
    assert (info.value.code, info.value.remote) == ("weak_params", True)
    assert client.state is HandshakeState.FAILED


@pytest.mark.parametrize(("n", "r"), [(2**14, 8), (2**15, 4)])
def test_a_client_answers_a_challenge_at_the_floor(clock, n, r):
    client = ClientHandshake(Role.MONITOR, "CP-1", SECRET, clock=clock)
    client.start()
    proof = client.receive(_challenge(n, r))
    assert proof is not None and proof.type is MessageType.PROOF


def test_moved_refusal_names_the_owner(clock):
    error = _throttled(moved_body("10.0.0.2:7000"), clock=clock)
    assert (error.code, error.moved_to, error.retry_after) == ("moved", "10.0.0.2:7000", None)


@pytest.mark.parametrize(
    "body",
    [{"code": "moved"}, {"code": "moved", "addr": ""}, {"code": "moved", "addr": 7000}],
)
def test_malformed_moved_refusal_is_a_plain_auth_failure(clock, body):
    error = _throttled(body, clock=clock)
    assert (error.code, error.moved_to) == ("auth_failed", None)
