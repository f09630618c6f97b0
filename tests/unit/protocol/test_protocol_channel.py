"""SecureChannel: sealing, sequence checks, reflection, tampering, expiry, rekeying."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet

from common.protocol.channel import SecureChannel, check_sequence
from common.protocol.errors import CryptoError, FrameError, MessageError, SequenceError
from common.protocol.keys import new_session_key
from common.protocol.messages import Message, MessageType, Side

HB = MessageType.HEARTBEAT


@pytest.fixture
def key():
    return new_session_key()


@pytest.fixture
def pair(key, clock):
    return SecureChannel(key, Side.CLIENT, clock), SecureChannel(key, Side.SERVER, clock)


def test_round_trip_both_ways(pair, clock):
    client, srv = pair
    token = client.seal(MessageType.CHARGE_REQUEST, {"cp_id": "CP-1"})
    assert srv.open(token) == Message(
        MessageType.CHARGE_REQUEST, 1, clock.now, {"cp_id": "CP-1"}, Side.CLIENT
    )
    assert srv.open(client.seal(HB, {})).seq == 2
    assert client.open(srv.seal(MessageType.CHARGE_AUTHORIZED, {})).src is Side.SERVER
    assert (client.send_seq, client.recv_seq, srv.send_seq, srv.recv_seq) == (2, 1, 1, 2)


def test_token_is_frameable_and_opaque(pair):
    client, _ = pair
    token = client.seal(HB, {"secret": "visible?"})
    assert b"\x02" not in token and b"\x03" not in token
    assert b"visible" not in token


def test_replay_is_rejected_and_does_not_advance(pair):
    client, srv = pair
    first = client.seal(HB, {})
    srv.open(first)
    with pytest.raises(SequenceError) as info:
        srv.open(first)
    assert (info.value.code, info.value.remote) == ("replay", True)
    assert srv.recv_seq == 1
    assert srv.open(client.seal(HB, {})).seq == 2


def test_out_of_order_is_rejected_then_recovers(pair):
    client, srv = pair
    first, second = client.seal(HB, {}), client.seal(HB, {})
    with pytest.raises(SequenceError) as info:
        srv.open(second)
    assert info.value.code == "out_of_order"
    assert srv.open(first).seq == 1
    assert srv.open(second).seq == 2


def test_reflected_message_is_rejected(pair):
    client, _ = pair
    with pytest.raises(SequenceError) as info:
        client.open(client.seal(HB, {}))
    assert info.value.code == "reflected"
    assert client.recv_seq == 0


def crypto_error(channel: SecureChannel, token: bytes) -> CryptoError:
    with pytest.raises(CryptoError) as info:
        channel.open(token)
    return info.value


def test_tampering_and_wrong_key_give_the_same_error(pair, clock):
    client, srv = pair
    token = bytearray(client.seal(HB, {}))
    token[30] = ord("A") if token[30] != ord("A") else ord("B")
    tampered = crypto_error(srv, bytes(token))
    stranger = SecureChannel(new_session_key(), Side.CLIENT, clock)
    wrong_key = crypto_error(srv, stranger.seal(HB, {}))
    garbage = crypto_error(srv, b'{"type":"heartbeat","seq":1,"ts":0,"body":{}}')
    for error in (tampered, wrong_key, garbage):
        assert (error.code, str(error), error.remote) == ("invalid_token", "invalid token", True)
    assert srv.recv_seq == 0


def test_expired_token(pair, clock):
    client, srv = pair
    late = client.seal(HB, {})
    on_time = client.seal(HB, {})
    clock.advance(120)
    assert srv.open(late).seq == 1
    clock.advance(1)
    assert crypto_error(srv, on_time).code == "invalid_token"


def test_no_ttl_never_expires(key, clock):
    client = SecureChannel(key, Side.CLIENT, clock, ttl=None)
    srv = SecureChannel(key, Side.SERVER, clock, ttl=None)
    token = client.seal(HB, {})
    clock.advance(10**6)
    assert srv.open(token).seq == 1


def test_sealed_message_without_src_is_refused(key, clock):
    srv = SecureChannel(key, Side.SERVER, clock)
    plain = json.dumps({"type": "heartbeat", "seq": 1, "ts": clock.now, "body": {}}).encode()
    with pytest.raises(MessageError) as info:
        srv.open(Fernet(key).encrypt_at_time(plain, int(clock.now)))
    assert info.value.code == "missing_field"


def test_rekey_continues_counters_and_drops_old_key(key, pair, clock):
    client, srv = pair
    srv.open(client.seal(HB, {}))
    new = new_session_key()
    client.rekey(new)
    srv.rekey(new)
    old_key_token = SecureChannel(key, Side.CLIENT, clock).seal(HB, {})
    assert crypto_error(srv, old_key_token).code == "invalid_token"
    assert srv.open(client.seal(HB, {})).seq == 2


def test_rekey_may_accept_the_previous_key_once(pair):
    client, srv = pair
    in_flight = client.seal(HB, {})
    new = new_session_key()
    srv.rekey(new, accept_previous=True)
    assert srv.open(in_flight).seq == 1
    client.rekey(new)
    assert srv.open(client.seal(HB, {})).seq == 2
    srv.rekey(new_session_key())
    assert crypto_error(srv, client.seal(HB, {})).code == "invalid_token"


def test_bad_key_is_a_local_crypto_error(clock):
    with pytest.raises(CryptoError) as info:
        SecureChannel(b"short", Side.CLIENT, clock)
    assert (info.value.code, info.value.remote) == ("bad_key", False)


def test_oversized_seal_does_not_consume_a_sequence_number(pair):
    client, srv = pair
    with pytest.raises(FrameError) as info:
        client.seal(HB, {"blob": "x" * 1000}, max_size=500)
    assert (info.value.code, info.value.remote) == ("oversized", False)
    assert client.send_seq == 0
    assert srv.open(client.seal(HB, {})).seq == 1


def test_check_sequence():
    check_sequence(0, 1)
    for last, seq, code in ((3, 3, "replay"), (3, 1, "replay"), (3, 5, "out_of_order")):
        with pytest.raises(SequenceError) as info:
            check_sequence(last, seq)
        assert info.value.code == code
