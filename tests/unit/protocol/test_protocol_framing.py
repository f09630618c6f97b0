"""FrameDecoder / encode_frame: exact bytes, chunking, resynchronisation, bounded memory."""

from __future__ import annotations

import pytest

from common.protocol.errors import FrameError
from common.protocol.framing import (
    MAX_FRAME_DATA,
    NEED_DATA,
    Ack,
    Frame,
    FrameDecoder,
    Nack,
    encode_frame,
    lrc,
)


def feed(data: bytes, drain, max_data: int = MAX_FRAME_DATA):
    decoder = FrameDecoder(max_data)
    decoder.receive_data(data)
    return drain(decoder)


def codes(events):
    return [e.code if isinstance(e, FrameError) else e for e in events]


def test_lrc_is_xor_of_data():
    assert lrc(b"") == 0
    assert lrc(b"\x01\x02\x04") == 0x07
    assert lrc(b"AB") == 0x41 ^ 0x42
    assert lrc(bytes(range(256)) * 3) == 0


def test_encode_exact_bytes():
    assert encode_frame(b"AB") == b"\x02AB\x03\x03"
    assert encode_frame(b"") == b"\x02\x03\x00"


@pytest.mark.parametrize("bad", [b"a\x02b", b"a\x03b"])
def test_encode_refuses_control_bytes_as_local_error(bad):
    with pytest.raises(FrameError) as info:
        encode_frame(bad)
    assert info.value.code == "bad_data"
    assert info.value.remote is False


def test_encode_refuses_oversized_as_local_error():
    encode_frame(b"x" * 8, max_data=8)
    with pytest.raises(FrameError) as info:
        encode_frame(b"x" * 9, max_data=8)
    assert (info.value.code, info.value.remote) == ("oversized", False)


def test_single_frame_round_trip(drain):
    assert feed(b"\x02hello\x03" + bytes((lrc(b"hello"),)), drain) == [Frame(b"hello")]


def test_split_at_every_byte_position(drain):
    wire = encode_frame(b'{"type":"heartbeat"}') + b"\x06" + encode_frame(b"second")
    for cut in range(len(wire) + 1):
        decoder = FrameDecoder()
        decoder.receive_data(wire[:cut])
        events = drain(decoder)
        decoder.receive_data(wire[cut:])
        events += drain(decoder)
        assert events == [Frame(b'{"type":"heartbeat"}'), Ack(), Frame(b"second")], cut


def test_one_byte_at_a_time(drain):
    wire = encode_frame(b"abc") * 3
    decoder = FrameDecoder()
    events = []
    for byte in wire:
        decoder.receive_data(bytes((byte,)))
        events += drain(decoder)
    assert events == [Frame(b"abc")] * 3


def test_many_frames_merged_in_one_chunk(drain):
    payloads = [f"frame-{i}".encode() for i in range(500)]
    wire = b"".join(encode_frame(p) for p in payloads)
    assert feed(wire, drain) == [Frame(p) for p in payloads]


def test_ack_and_nack_between_frames(drain):
    wire = b"\x06" + encode_frame(b"a") + b"\x15\x06" + encode_frame(b"b") + b"\x15"
    assert feed(wire, drain) == [Ack(), Frame(b"a"), Nack(), Ack(), Frame(b"b"), Nack()]


def test_bad_lrc_raises_then_next_frame_decodes(drain):
    bad = b"\x02abc\x03" + bytes((lrc(b"abc") ^ 0xFF,))
    events = feed(bad + encode_frame(b"good"), drain)
    assert codes(events) == ["bad_lrc", Frame(b"good")]
    assert events[0].remote is True


def test_stx_inside_frame_is_truncated_and_starts_a_new_frame(drain):
    events = feed(b"\x02lost" + encode_frame(b"kept"), drain)
    assert codes(events) == ["truncated", Frame(b"kept")]


def test_stray_garbage_is_skipped_and_counted(drain):
    decoder = FrameDecoder()
    decoder.receive_data(b"garbage\xff\x00" + encode_frame(b"x") + b"\x03more")
    assert drain(decoder) == [Frame(b"x")]
    assert decoder.discarded_bytes == len(b"garbage\xff\x00") + len(b"\x03more")


@pytest.mark.parametrize(
    ("data", "check"),
    [(b"\x01\x04\x07", 0x02), (b"\x05\x06", 0x03), (b"\x01\x07", 0x06), (b"\x10\x05", 0x15)],
)
def test_lrc_byte_may_be_stx_etx_ack_or_nack(data, check, drain):
    wire = encode_frame(data)
    assert wire[-1] == check
    assert feed(wire + encode_frame(b"next"), drain) == [Frame(data), Frame(b"next")]


def test_lrc_arriving_in_its_own_chunk(drain):
    decoder = FrameDecoder()
    decoder.receive_data(b"\x02\x01\x03")
    assert drain(decoder) == []
    decoder.receive_data(b"\x01")
    assert drain(decoder) == [Frame(b"\x01")]


def test_oversized_reported_once_then_skipped_to_its_end(drain):
    wire = b"\x02" + b"y" * 20 + b"\x03\x02" + encode_frame(b"ok")
    # The LRC byte of the oversized frame is 0x02: it is swallowed, not taken for an STX.
    decoder = FrameDecoder(max_data=8)
    decoder.receive_data(wire)
    assert codes(drain(decoder)) == ["oversized", Frame(b"ok")]
    assert decoder.discarded_bytes == 20 + 2  # its DATA, ETX and LRC


def test_oversized_then_stx_resynchronises_on_the_new_frame(drain):
    events = feed(b"\x02" + b"y" * 20 + encode_frame(b"ok"), drain, max_data=8)
    assert codes(events) == ["oversized", Frame(b"ok")]


def test_frame_of_exactly_max_data_is_accepted(drain):
    assert feed(encode_frame(b"z" * 8, max_data=8), drain, max_data=8) == [Frame(b"z" * 8)]


def test_memory_stays_bounded_on_endless_frame(drain):
    decoder = FrameDecoder(max_data=1024)
    decoder.receive_data(b"\x02")
    chunk = b"A" * 65536
    seen = []
    for _ in range(160):  # 10 MiB without an ETX
        decoder.receive_data(chunk)
        seen += drain(decoder)
        assert decoder.buffered <= 1024
    assert codes(seen) == ["oversized"]
    decoder.receive_data(b"\x03\x00" + encode_frame(b"after"))
    assert drain(decoder) == [Frame(b"after")]
    assert decoder.buffered == 0


def test_memory_bounded_after_one_huge_chunk(drain):
    decoder = FrameDecoder()
    decoder.receive_data(b"\x02" + b"B" * (10 * 1024 * 1024))
    assert codes(drain(decoder)) == ["oversized"]
    assert decoder.buffered == 0


def test_partial_frame_held_within_max_data(drain):
    decoder = FrameDecoder(max_data=100)
    decoder.receive_data(b"\x02" + b"c" * 100)
    assert drain(decoder) == []
    assert decoder.buffered == 100


def test_need_data_on_empty_input():
    decoder = FrameDecoder()
    assert decoder.next_event() is NEED_DATA
    decoder.receive_data(b"")
    assert decoder.next_event() is NEED_DATA


def test_max_data_must_be_positive():
    with pytest.raises(ValueError):
        FrameDecoder(0)
