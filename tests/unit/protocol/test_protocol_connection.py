"""Connection: a client and a server object joined in memory, asserting on exact bytes."""

from __future__ import annotations

import pytest

from common.protocol.connection import (
    AckReceived,
    Connection,
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
from common.protocol.framing import NEED_DATA, encode_frame, lrc
from common.protocol.handshake import ClientHandshake, Role
from common.protocol.handshake_server import ServerHandshake
from common.protocol.keys import make_verifier, new_session_key
from common.protocol.messages import Message, MessageType, Side
from tests.support.scrypt import CHEAP_SCRYPT

# The fast_params fixture's n: clients accept it (the default floor is 2**14).
FLOOR = CHEAP_SCRYPT.n

HB = MessageType.HEARTBEAT


def deliver(sender: Connection, receiver: Connection, wire: bytes, drain) -> list:
    """Give ``wire`` to ``receiver``, hand its ACK/NACK back to ``sender``; return events."""
    receiver.receive_data(wire)
    events = drain(receiver)
    sender.receive_data(receiver.data_to_send())
    drain(sender)
    return events


def only_message(events) -> Message:
    [event] = events
    assert isinstance(event, MessageReceived), event
    return event.message


def only_error(events) -> ProtocolError:
    [event] = events
    assert isinstance(event, Rejected), event
    return event.error


@pytest.fixture
def plain_pair(clock):
    return Connection(clock), Connection(clock)


@pytest.fixture
def secure_pair(clock):
    key = new_session_key()
    client, srv = Connection(clock), Connection(clock)
    client.secure(key, Side.CLIENT)
    srv.secure(key, Side.SERVER)
    return client, srv


def test_plain_round_trip_exact_bytes(plain_pair, clock, drain):
    clock.now = 1000.0
    client, srv = plain_pair
    wire = client.send(MessageType.HELLO, {"id": "CP-1"})
    data = b'{"type":"hello","seq":1,"ts":1000.0,"body":{"id":"CP-1"}}'
    assert wire == b"\x02" + data + b"\x03" + bytes((lrc(data),))
    assert client.pending_acks == 1
    srv.receive_data(wire)
    assert srv.next_event() == MessageReceived(
        Message(MessageType.HELLO, 1, 1000.0, {"id": "CP-1"})
    )
    assert srv.next_event() is NEED_DATA
    assert srv.data_to_send() == b"\x06"
    assert srv.data_to_send() == b""
    client.receive_data(b"\x06")
    assert client.next_event() == AckReceived()
    assert client.pending_acks == 0


def test_handshake_then_encrypted_traffic(clock, fast_params, drain):
    verifier = make_verifier("pw", fast_params)
    client_hs = ClientHandshake(Role.MONITOR, "CP-1", "pw", clock=clock, min_n=FLOOR)
    server_hs = ServerHandshake(lambda role, pid: verifier, clock)
    client, srv = Connection(clock), Connection(clock)

    hello = client_hs.start()
    got = only_message(deliver(client, srv, client.send(hello.type, hello.body), drain))
    challenge = server_hs.receive(got)
    got = only_message(deliver(srv, client, srv.send(challenge.type, challenge.body), drain))
    assert got.seq == challenge.seq == 1
    proof = client_hs.receive(got)
    assert proof is not None
    got = only_message(deliver(client, srv, client.send(proof.type, proof.body), drain))
    assert got.seq == proof.seq == 2
    welcome = server_hs.receive(got)
    welcome_wire = srv.send(welcome.type, welcome.body)
    assert server_hs.session_key is not None
    srv.secure(server_hs.session_key, Side.SERVER)
    # The first encrypted frame may arrive in the same chunk as WELCOME: decoding is lazy,
    # so the client switches to encryption between the two events.
    client.receive_data(welcome_wire + srv.send(MessageType.STATUS, {"state": "ACTIVE"}))
    event = client.next_event()
    assert isinstance(event, MessageReceived)
    assert client_hs.receive(event.message) is None
    assert client_hs.session_key is not None
    client.secure(client_hs.session_key, Side.CLIENT)
    assert client.next_event() == MessageReceived(
        Message(MessageType.STATUS, 1, clock.now, {"state": "ACTIVE"}, Side.SERVER)
    )
    assert client.data_to_send() == b"\x06\x06"  # WELCOME and STATUS
    assert client.is_secure and client.channel is not None
    message = only_message(deliver(client, srv, client.send(HB, {}), drain))
    assert (message.type, message.seq, message.src) == (HB, 1, Side.CLIENT)


def test_replayed_frame_is_nacked_and_connection_continues(secure_pair, drain):
    client, srv = secure_pair
    captured = client.send(HB, {})
    only_message(deliver(client, srv, captured, drain))
    srv.receive_data(captured)
    error = only_error(drain(srv))
    assert isinstance(error, SequenceError) and error.code == "replay"
    assert srv.data_to_send() == b"\x15"
    assert srv.rejected_count == 1
    assert only_message(deliver(client, srv, client.send(HB, {}), drain)).seq == 2
    assert client.pending_acks == 0


def test_out_of_order_frames(secure_pair, drain):
    client, srv = secure_pair
    first, second = client.send(HB, {}), client.send(HB, {})
    srv.receive_data(second + first + second)
    events = drain(srv)
    assert isinstance(events[0], Rejected) and events[0].error.code == "out_of_order"
    assert [e.message.seq for e in events[1:]] == [1, 2]
    assert srv.data_to_send() == b"\x15\x06\x06"


def test_reflected_frame(secure_pair, drain):
    client, _ = secure_pair
    client.receive_data(client.send(HB, {}))
    assert only_error(drain(client)).code == "reflected"


def test_tampered_and_wrong_key_frames_look_the_same(secure_pair, clock, drain):
    client, srv = secure_pair
    wire = bytearray(client.send(HB, {}))
    wire[40] = ord("A") if wire[40] != ord("A") else ord("B")
    wire[-1] = lrc(bytes(wire[1:-2]))  # a careful attacker fixes the LRC
    stranger = Connection(clock)
    stranger.secure(new_session_key(), Side.CLIENT)
    srv.receive_data(bytes(wire) + stranger.send(HB, {}))
    first, second = (e.error for e in drain(srv))
    assert isinstance(first, CryptoError) and isinstance(second, CryptoError)
    assert (
        (first.code, str(first)) == (second.code, str(second)) == ("invalid_token", "invalid token")
    )
    assert srv.data_to_send() == b"\x15\x15"


def test_expired_frame(secure_pair, clock, drain):
    client, srv = secure_pair
    wire = client.send(HB, {})
    clock.advance(121)
    assert only_error(deliver(client, srv, wire, drain)).code == "invalid_token"


def test_plain_frame_after_secure_is_refused(secure_pair, drain):
    _, srv = secure_pair
    downgrade = encode_frame(b'{"type":"stop","seq":1,"ts":0,"body":{}}')
    srv.receive_data(downgrade)
    assert isinstance(only_error(drain(srv)), CryptoError)
    assert srv.data_to_send() == b"\x15"


def test_non_utf8_plain_frame_is_nacked(plain_pair, drain):
    _, srv = plain_pair
    srv.receive_data(encode_frame(b"\xff\xfe\xfd"))
    error = only_error(drain(srv))
    assert isinstance(error, MessageError) and error.code == "bad_utf8" and error.remote
    assert srv.data_to_send() == b"\x15"


def test_plain_replay_and_gap_are_refused(plain_pair, drain):
    client, srv = plain_pair
    first = client.send(MessageType.HELLO, {})
    second = client.send(MessageType.PROOF, {})
    srv.receive_data(first + first + b"garbage" + second)
    events = drain(srv)
    assert [type(e) for e in events] == [MessageReceived, Rejected, MessageReceived]
    assert events[1].error.code == "replay"
    assert srv.data_to_send() == b"\x06\x15\x06"
    assert srv.discarded_bytes == len(b"garbage")


def test_acks_and_nacks_follow_frame_order(plain_pair, drain):
    client, srv = plain_pair
    good1 = client.send(HB, {})
    bad = b"\x02corrupt\x03\x00"
    good2 = client.send(HB, {})
    srv.receive_data(good1 + bad + good2)
    assert [type(e) for e in drain(srv)] == [MessageReceived, Rejected, MessageReceived]
    assert srv.data_to_send() == b"\x06\x15\x06"
    assert srv.rejected_count == 1


def test_nack_hands_back_the_frame_for_resending(secure_pair, drain):
    client, srv = secure_pair
    wire = client.send(HB, {"n": 1})
    corrupted = wire[:-1] + bytes((wire[-1] ^ 1,))
    srv.receive_data(corrupted)
    assert only_error(drain(srv)).code == "bad_lrc"
    client.receive_data(srv.data_to_send())
    event = client.next_event()
    assert event == NackReceived(wire)
    assert client.pending_acks == 0
    again = client.resend(event.frame)
    assert client.pending_acks == 1
    assert only_message(deliver(client, srv, again, drain)).body == {"n": 1}
    assert client.pending_acks == 0


def test_unsolicited_ack_is_harmless(plain_pair, drain):
    client, _ = plain_pair
    client.receive_data(b"\x06\x15")
    assert drain(client) == [AckReceived(), NackReceived(b"")]
    assert client.pending_acks == 0


def test_oversized_send_is_local_and_keeps_counters(clock, drain):
    client, srv = Connection(clock, max_data=200), Connection(clock, max_data=200)
    with pytest.raises(FrameError) as info:
        client.send(HB, {"blob": "x" * 300})
    assert (info.value.code, info.value.remote) == ("oversized", False)
    assert client.pending_acks == 0
    assert only_message(deliver(client, srv, client.send(HB, {}), drain)).seq == 1


def test_oversized_incoming_frame_is_nacked_once(clock, drain):
    srv = Connection(clock, max_data=16)
    srv.receive_data(b"\x02" + b"x" * 100 + b"\x03\x00")
    assert only_error(drain(srv)).code == "oversized"
    assert srv.data_to_send() == b"\x15"
    assert srv.buffered == 0


def test_secure_twice_is_a_local_error(secure_pair):
    client, _ = secure_pair
    with pytest.raises(ProtocolError) as info:
        client.secure(new_session_key(), Side.CLIENT)
    assert (info.value.code, info.value.remote) == ("already_secure", False)
    assert not isinstance(info.value, HandshakeError)
