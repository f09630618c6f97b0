"""Property tests: arbitrary bytes, arbitrarily chunked, never crash, hang or hoard memory."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from common.protocol.connection import (
    AckReceived,
    Connection,
    MessageReceived,
    NackReceived,
    Rejected,
)
from common.protocol.errors import ProtocolError
from common.protocol.framing import NEED_DATA, Ack, Frame, FrameDecoder, Nack, encode_frame
from common.protocol.keys import new_session_key
from common.protocol.messages import MessageType, Side
from tests.support.clock import FakeClock

# No example database: tests must not write into the work tree.
FUZZ = settings(max_examples=300, deadline=None, database=None)
KEY = new_session_key()
NOW = 1_700_000_000.0
SMALL_MAX = 40

# Bytes biased towards the ones that mean something to the decoder.
interesting = st.sampled_from([0x02, 0x03, 0x06, 0x15, 0x00, 0x41, 0x7B, 0xFF])
streams = st.lists(st.one_of(interesting, st.integers(0, 255)), max_size=600).map(bytes)


@st.composite
def chunked(draw, data_strategy=streams):
    data = draw(data_strategy)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=20)))
    bounds = [0, *cuts, len(data)]
    return data, [data[a:b] for a, b in itertools.pairwise(bounds)]


def drain_checked(source, limit: int) -> list:
    events = []
    for _ in range(limit + 2):
        try:
            event = source.next_event()
        except ProtocolError as exc:
            events.append(exc)
            continue
        if event is NEED_DATA:
            return events
        events.append(event)
    raise AssertionError("next_event never returned NEED_DATA")


@FUZZ
@given(chunked())
def test_decoder_survives_any_stream(case):
    data, chunks = case
    decoder = FrameDecoder(max_data=SMALL_MAX)
    for chunk in chunks:
        decoder.receive_data(chunk)
        for event in drain_checked(decoder, len(data)):
            assert isinstance(event, Frame | Ack | Nack | ProtocolError)
            if isinstance(event, Frame):
                assert len(event.data) <= SMALL_MAX
        assert decoder.buffered <= SMALL_MAX


@FUZZ
@given(chunked())
def test_chunking_does_not_change_the_events(case):
    data, chunks = case

    def summary(parts):
        decoder = FrameDecoder(max_data=SMALL_MAX)
        out = []
        for part in parts:
            decoder.receive_data(part)
            out += [
                (type(e).__name__, getattr(e, "code", None), getattr(e, "data", None))
                for e in drain_checked(decoder, len(data))
            ]
        return out

    assert summary(chunks) == summary([data])


@FUZZ
@given(chunked(), st.booleans())
def test_connection_never_raises(case, secure):
    _data, chunks = case
    conn = Connection(FakeClock(NOW), max_data=SMALL_MAX)
    if secure:
        conn.secure(KEY, Side.SERVER)
    for chunk in chunks:
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not NEED_DATA:
            assert isinstance(event, MessageReceived | AckReceived | NackReceived | Rejected)
    assert conn.buffered <= SMALL_MAX
    assert set(conn.data_to_send()) <= {0x06, 0x15}


frame_data = st.binary(max_size=200).map(lambda b: b.replace(b"\x02", b"").replace(b"\x03", b""))


@FUZZ
@given(st.lists(frame_data, max_size=10), st.data())
def test_encode_decode_round_trip(payloads, draw):
    wire = b"".join(encode_frame(p) for p in payloads)
    cuts = sorted(draw.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    bounds = [0, *cuts, len(wire)]
    decoder = FrameDecoder()
    events = []
    for a, b in itertools.pairwise(bounds):
        decoder.receive_data(wire[a:b])
        events += drain_checked(decoder, len(wire))
    assert events == [Frame(p) for p in payloads]


@FUZZ
@given(st.dictionaries(st.text(max_size=8), st.text(max_size=30), max_size=5))
def test_connection_round_trip_for_any_text_body(body):
    clock = FakeClock(NOW)
    client, srv = Connection(clock), Connection(clock)
    client.secure(KEY, Side.CLIENT)
    srv.secure(KEY, Side.SERVER)
    srv.receive_data(client.send(MessageType.TELEMETRY, body))
    event = srv.next_event()
    assert isinstance(event, MessageReceived)
    assert event.message.body == body
