"""Message envelope: exact encoding and every decoding fault with its code."""

from __future__ import annotations

import pytest

from common.protocol.errors import MessageError
from common.protocol.messages import Message, MessageType, Side, decode_message, encode_message


def test_encode_is_compact_utf8_json():
    msg = Message(MessageType.CHARGE_REQUEST, 3, 12.5, {"cp_id": "CP-1", "note": "café"})
    assert (
        encode_message(msg)
        == (
            '{"type":"charge_request","seq":3,"ts":12.5,"body":{"cp_id":"CP-1","note":"café"}}'
        ).encode()
    )


def test_round_trip_with_src():
    msg = Message(MessageType.TELEMETRY, 7, 1.0, {"kw": 7.4}, Side.SERVER)
    data = encode_message(msg)
    assert data.endswith(b',"src":"server"}')
    assert decode_message(data) == msg


def test_body_defaults_to_empty():
    assert Message(MessageType.BYE, 1, 0.0).body == {}
    assert decode_message(encode_message(Message(MessageType.BYE, 1, 0.0))).body == {}


def test_values_are_lower_snake_case():
    assert all(t.value == t.name.lower() for t in MessageType)
    assert MessageType.AUTH_FAILED == "auth_failed"


def test_control_characters_are_escaped_so_never_framing_bytes():
    data = encode_message(Message(MessageType.ERROR, 1, 0.0, {"text": "\x02\x03\x06\x15"}))
    assert not set(data) & {0x02, 0x03}


def test_unencodable_body_is_a_local_error():
    with pytest.raises(MessageError) as info:
        encode_message(Message(MessageType.STATUS, 1, 0.0, {"x": object()}))
    assert (info.value.code, info.value.remote) == ("bad_body", False)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\xff\xfe", "bad_utf8"),
        (b"", "bad_json"),
        (b"{not json", "bad_json"),
        (b'{"type":"bye","seq":1,"ts":NaN,"body":{}}', "bad_json"),
        (b"[" * 100_000, "bad_json"),
        (b'{"type":"bye","seq":1' + b"0" * 5000 + b',"ts":0,"body":{}}', "bad_json"),
        (b"[1,2]", "not_object"),
        (b'"hello"', "not_object"),
        (b'{"seq":1,"ts":0,"body":{}}', "missing_field"),
        (b'{"type":"bye","ts":0,"body":{}}', "missing_field"),
        (b'{"type":"bye","seq":1,"body":{}}', "missing_field"),
        (b'{"type":"bye","seq":1,"ts":0}', "missing_field"),
        (b'{"type":"teleport","seq":1,"ts":0,"body":{}}', "unknown_type"),
        (b'{"type":["bye"],"seq":1,"ts":0,"body":{}}', "unknown_type"),
        (b'{"type":"bye","seq":"1","ts":0,"body":{}}', "bad_field"),
        (b'{"type":"bye","seq":true,"ts":0,"body":{}}', "bad_field"),
        (b'{"type":"bye","seq":0,"ts":0,"body":{}}', "bad_field"),
        (b'{"type":"bye","seq":1.5,"ts":0,"body":{}}', "bad_field"),
        (b'{"type":"bye","seq":1,"ts":"now","body":{}}', "bad_field"),
        (b'{"type":"bye","seq":1,"ts":1e999,"body":{}}', "bad_field"),
        (b'{"type":"bye","seq":1,"ts":' + b"9" * 400 + b',"body":{}}', "bad_field"),
        (b'{"type":"bye","seq":1,"ts":0,"body":[]}', "bad_field"),
        (b'{"type":"bye","seq":1,"ts":0,"body":{},"src":"moon"}', "bad_field"),
    ],
)
def test_decode_faults_have_codes(data, code):
    with pytest.raises(MessageError) as info:
        decode_message(data)
    assert info.value.code == code
    assert info.value.remote is True


def test_unknown_top_level_keys_are_ignored():
    msg = decode_message(b'{"type":"bye","seq":2,"ts":5,"body":{},"future":1}')
    assert msg == Message(MessageType.BYE, 2, 5.0, {})
