"""Codec benchmark: frames per second through the real sans-IO protocol code.

    python -m bench.codec [--seconds 0.5] [--repeat 3] [--chunks frame,1460,65536]

Measures ``common.protocol`` exactly as Central and the clients use it, with no socket:

* **encode** — ``Connection.send(type, body)``: envelope to JSON, then (``fernet``) sealing
  under the session key with the next sequence number, then ``STX·DATA·ETX·LRC`` framing.
  ``plain`` is the same connection before ``secure()`` (the handshake's JSON frames).
* **decode** — a fresh receiving ``Connection`` fed a recorded stream of frames through
  ``receive_data`` in chunks, draining ``next_event`` after each chunk and collecting the
  ACK bytes it owes with ``data_to_send`` (what ``common.tcp`` does per read). Chunk
  ``frame`` is one read per frame (a lone heartbeat), ``1460`` is one TCP segment (frames
  split across reads), ``65536`` is ``READ_CHUNK`` (a burst drained in one read).
* **frame** — ``encode_frame`` / ``FrameDecoder`` alone on the same sealed DATA, to show
  what the framing layer costs within the rest.

Two typical messages: a monitor heartbeat ``{"engine_ok": true}`` and an engine telemetry
``{"session_id": UUID, "kw": 11.0, "kwh": 12.345}``; sealed, their frames are about 210 and
300 bytes (80 and 140 in plain JSON). Each case runs for ``--seconds``, ``--repeat`` times;
the best run is reported (the least disturbed by other work on the machine). One thread.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench import cli
from bench.report import report
from common.protocol import (
    NEED_DATA,
    Connection,
    FrameDecoder,
    MessageReceived,
    MessageType,
    Side,
    encode_frame,
    new_session_key,
)

__all__ = ["main"]

STREAM_FRAMES = 2000  # frames per recorded stream a decoder pass consumes
ACK_EVERY = 1000  # encode: answer the sender's frames this often (untimed)

MESSAGES: dict[str, tuple[MessageType, dict[str, Any]]] = {
    "heartbeat": (MessageType.HEARTBEAT, {"engine_ok": True}),
    "telemetry": (
        MessageType.TELEMETRY,
        {"session_id": str(uuid.UUID(int=0x5EED)), "kw": 11.0, "kwh": 12.345},
    ),
}


@dataclass(frozen=True)
class Case:
    """One measured thing: ``run()`` does some work and returns how many frames it handled."""

    name: str
    message: str
    frame_bytes: int
    run: Callable[[], int]


def _sender(key: bytes | None) -> Connection:
    conn = Connection(time.time)
    if key is not None:
        conn.secure(key, Side.CLIENT)
    return conn


def _receiver(key: bytes | None) -> Connection:
    conn = Connection(time.time)
    if key is not None:
        conn.secure(key, Side.SERVER)
    return conn


def _encode_case(kind: str, key: bytes | None, message: str) -> Case:
    msg_type, body = MESSAGES[message]
    state = {"conn": _sender(key)}
    sample = _sender(key).send(msg_type, body)

    def run() -> int:
        conn = state["conn"]
        send = conn.send
        for _ in range(ACK_EVERY):
            send(msg_type, body)
        # Untimed in spirit, negligible in fact: the peer's ACKs empty the resend queue.
        conn.receive_data(b"\x06" * ACK_EVERY)
        while conn.next_event() is not NEED_DATA:
            pass
        return ACK_EVERY

    return Case(f"encode {kind}", message, len(sample), run)


def _stream(key: bytes | None, message: str) -> list[bytes]:
    msg_type, body = MESSAGES[message]
    conn = _sender(key)
    return [conn.send(msg_type, body) for _ in range(STREAM_FRAMES)]


def _mean_size(frames: Sequence[bytes]) -> int:
    return round(sum(map(len, frames)) / len(frames))


def _chunked(frames: Sequence[bytes], chunk: str) -> list[bytes]:
    if chunk == "frame":
        return list(frames)
    size = int(chunk)
    data = b"".join(frames)
    return [data[i : i + size] for i in range(0, len(data), size)]


def _decode_case(kind: str, key: bytes | None, message: str, chunk: str) -> Case:
    frames = _stream(key, message)
    chunks = _chunked(frames, chunk)

    def run() -> int:
        conn = _receiver(key)
        got = 0
        for data in chunks:
            conn.receive_data(data)
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, MessageReceived):
                    got += 1
                else:
                    raise RuntimeError(f"decoder refused a frame: {event}")
            conn.data_to_send()
        if got != len(frames):
            raise RuntimeError(f"decoded {got} of {len(frames)} frames")
        return got

    return Case(f"decode {kind} chunk={chunk}", message, _mean_size(frames), run)


def _frame_cases(key: bytes, message: str) -> list[Case]:
    frames = _stream(key, message)
    datas = [f[1:-2] for f in frames]

    def encode() -> int:
        for data in datas:
            encode_frame(data)
        return len(datas)

    def decode() -> int:
        decoder = FrameDecoder()
        got = 0
        for frame in frames:
            decoder.receive_data(frame)
            while decoder.next_event() is not NEED_DATA:
                got += 1
        return got

    size = _mean_size(frames)
    return [
        Case("frame only: encode_frame", message, size, encode),
        Case("frame only: FrameDecoder chunk=frame", message, size, decode),
    ]


def cases(chunks: Sequence[str], messages: Sequence[str]) -> list[Case]:
    """Every case, in report order."""
    key = new_session_key()
    out: list[Case] = []
    for message in messages:
        for kind, k in (("plain", None), ("fernet", key)):
            out.append(_encode_case(kind, k, message))
            out += [_decode_case(kind, k, message, chunk) for chunk in chunks]
        out += _frame_cases(key, message)
    return out


def measure(case: Case, seconds: float, repeat: int) -> dict[str, Any]:
    """Run ``case`` for ``seconds``, ``repeat`` times; the best rate as a report row."""
    case.run()  # warm-up: caches, first Fernet object, regex compilation
    best = 0.0
    for _ in range(repeat):
        frames = 0
        start = time.perf_counter()
        deadline = start + seconds
        while (now := time.perf_counter()) < deadline or frames == 0:
            frames += case.run()
        best = max(best, frames / (now - start))
    return {
        "case": case.name,
        "message": case.message,
        "frame_bytes": case.frame_bytes,
        "frames_per_s": round(best),
        "us_per_frame": round(1e6 / best, 2),
    }


def _chunk_list(text: str) -> list[str]:
    items = [c.strip() for c in text.split(",") if c.strip()]
    for item in items:
        if item != "frame" and not (item.isdigit() and int(item) > 0):
            raise argparse.ArgumentTypeError(f"chunk {item!r}: 'frame' or a positive size")
    if not items:
        raise argparse.ArgumentTypeError("give at least one chunk size")
    return items


def _arguments(parser: argparse.ArgumentParser) -> None:
    cli.number(parser, "--seconds", float, 0.5, "time per run of a case")
    cli.number(parser, "--repeat", int, 3, "runs per case; the best is reported")
    parser.add_argument(
        "--chunks",
        type=_chunk_list,
        default=["frame", "1460", "65536"],
        help="read sizes fed to the decoder: 'frame' (one read per frame) or bytes "
        "(default frame,1460,65536)",
    )
    parser.add_argument(
        "--messages",
        choices=sorted(MESSAGES),
        nargs="+",
        default=list(MESSAGES),
        help="which messages to measure (default: all)",
    )


def _run(args: argparse.Namespace) -> int:
    cli.positive(args, "seconds", "repeat")
    todo = cases(args.chunks, args.messages)
    rows = []
    for i, case in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {case.message}: {case.name} ...", flush=True)
        rows.append(measure(case, args.seconds, args.repeat))
    meta: Mapping[str, Any] = {
        "seconds_per_run": args.seconds,
        "repeat": args.repeat,
        "best_of_repeat": True,
        "bodies": {name: body for name, (_, body) in MESSAGES.items()},
        "stream_frames": STREAM_FRAMES,
    }
    report("codec", rows, meta)
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main("codec", __doc__, argv, _arguments, _run)


if __name__ == "__main__":
    raise SystemExit(main())
