"""The bound: a bare asyncio server that only de-frames, Fernet-decrypts and ACKs.

    EV_BENCH_KEY=<fernet key> python -m bench.bare --port 7100

No handshake, no logic, no database, no Kafka: every connection is secured at once with
the shared key ``EV_BENCH_KEY`` and each frame goes through the project's own sans-IO
``Connection`` (framing, LRC, Fernet, JSON envelope, sequence check) and is answered
ACK/NACK. The load generator (``bench.loadgen``, bare mode) drives it exactly as it drives
Central, so Central's sustained rate can be quoted as a share of this one.
It is built on ``asyncio.Protocol`` callbacks, the cheapest way asyncio offers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from typing import cast

from bench import cli
from common.protocol import NEED_DATA, Connection
from common.protocol.messages import Side
from common.ready import announce

__all__ = ["BareProtocol", "main", "serve"]


class BareProtocol(asyncio.Protocol):
    """One connection: bytes in, ACK/NACK out."""

    def __init__(self, key: bytes) -> None:
        self.conn = Connection(time.time)
        self.conn.secure(key, Side.SERVER)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        while conn.next_event() is not NEED_DATA:
            pass
        out = conn.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)


async def serve(host: str, port: int, key: bytes) -> None:
    """Serve until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await loop.create_server(lambda: BareProtocol(key), host, port, backlog=4096)
    print(f"bare server listening on {host}:{port}", flush=True)
    announce("bench-bare", listen=f"{host}:{port}")
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = cli.parser("bare", __doc__)
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7100, help="listen port (default 7100)")
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop (as Central does when installed)"
    )
    args = parser.parse_args(argv)
    key = os.environ.get("EV_BENCH_KEY", "").encode()
    if not key:
        parser.error("EV_BENCH_KEY (a Fernet key) must be set")
    from bench.procs import raise_nofile

    raise_nofile()
    run = asyncio.run
    if args.uvloop:
        import uvloop

        run = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        run(serve(args.host, args.port, key))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
