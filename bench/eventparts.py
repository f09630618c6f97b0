"""The event-path benchmark's three parts (``bench.eventpath``; ``bench.board`` uses the generator).

* :class:`Generator`: monitors of every CP that flip their engines at a steady rate and
  record when each change was sent.
* :class:`SseReader`: reads the web UI's ``/events`` stream like a browser and records when
  each tile arrived.
* :class:`KafkaTap`: reads ``evcharging.events`` and records when each state change arrived
  and its own time stamp.

Each records :class:`Seen` observations; :func:`bench.eventpath.match` pairs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from common.client import ClientLink, ConnectionClosed, connect
from common.config import HostPort
from common.events import EventConsumer
from common.events.types import EventType
from common.protocol.handshake import Role
from common.protocol.messages import MessageType

__all__ = ["ACTIVATED", "BROKEN", "VIEW_SIZE", "Generator", "KafkaTap", "Seen", "SseReader"]

BROKEN, ACTIVATED = "BROKEN", "ACTIVATED"
VIEW_SIZE = 1000  # rows of the reader's view: the web UI's largest page (web_ui/fleet.py)


class Seen(NamedTuple):
    """One observation: at ``t`` (epoch s), CP ``cp`` was shown in ``state``."""

    t: float
    cp: str
    state: str
    ts: float = math.nan  # the event's own timestamp (tap only)


# ------------------------------------------------------------------ the browser
class SseReader:
    """Reads ``/events`` like an ``EventSource``: reconnects if the server drops it."""

    def __init__(self, host: str, port: int) -> None:
        self._host, self._port = host, port
        self.tiles: list[Seen] = []
        self.counts: dict[str, int] = defaultdict(int)
        self.reconnects = -1
        self.snapshot = threading.Event()
        self._stop = threading.Event()
        self._conn: http.client.HTTPConnection | None = None
        self._thread = threading.Thread(target=self._run, name="sse-reader", daemon=True)

    def start(self) -> SseReader:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.reconnects += 1
            with contextlib.suppress(OSError, http.client.HTTPException):
                self._read_stream()
            self._stop.wait(1.5)  # the stream's retry: interval

    def _read_stream(self) -> None:
        self._conn = conn = http.client.HTTPConnection(self._host, self._port, timeout=30)
        path = f"/events?for=board&size={VIEW_SIZE}"
        conn.request("GET", path, headers={"Accept": "text/event-stream"})
        response = conn.getresponse()
        if response.status != 200:
            raise http.client.HTTPException(f"/events answered {response.status}")
        buffer = b""
        while not self._stop.is_set():
            chunk = response.read1(65536)  # whatever has arrived, without waiting for more
            if not chunk:
                return
            now = time.time()
            buffer += chunk
            *messages, buffer = buffer.split(b"\n\n")
            for message in messages:
                self._message(now, message)

    def _message(self, now: float, message: bytes) -> None:
        kind, data = "message", b""
        for line in message.split(b"\n"):
            if line.startswith(b"event:"):
                kind = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data = line[5:]
        self.counts[kind] += 1
        if kind not in ("snapshot", "update"):
            return
        body = json.loads(data)
        rows = body.get("rows") or (body.get("list") or {}).get("rows") or []
        self.tiles.extend(Seen(now, str(row["id"]), str(row["state"])) for row in rows)
        if kind == "snapshot":
            self.snapshot.set()

    def stop(self) -> None:
        self._stop.set()
        if self._conn is not None and self._conn.sock is not None:
            with contextlib.suppress(OSError):
                self._conn.sock.shutdown(2)  # unblocks read1()
        self._thread.join(5)


# ------------------------------------------------------------------ the tap
class KafkaTap:
    """Every ``cp.state_changed`` event on the topic, with arrival time and event ts."""

    def __init__(self, bootstrap: str) -> None:
        self.seen: list[Seen] = []
        self.error: BaseException | None = None
        self._consumer = EventConsumer(bootstrap, from_beginning=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kafka-tap", daemon=True)

    def start(self) -> KafkaTap:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                batch = self._consumer.poll(0.2)
                now = time.time()
                for event in batch:
                    if event.type is EventType.CP_STATE_CHANGED and event.cp_id:
                        state = str(event.data.get("to"))
                        self.seen.append(Seen(now, event.cp_id, state, event.ts.timestamp()))
        except BaseException as exc:  # reported by main()
            self.error = exc

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


# ------------------------------------------------------------------ the generator
@dataclass
class _CP:
    cp_id: str
    link: ClientLink
    engine_ok: bool = True
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


@dataclass
class Generator:
    """Monitors of every CP; flips their engines at a steady rate."""

    addr: HostPort
    heartbeat: float
    cps: list[_CP] = field(default_factory=list)
    sends: list[Seen] = field(default_factory=list)

    async def connect(self, creds: dict[str, str], concurrency: int = 32) -> None:
        gate = asyncio.Semaphore(concurrency)

        async def one(cp_id: str, secret: str) -> _CP:
            async with gate:
                link = await connect(self.addr, Role.MONITOR, cp_id, secret=secret, timeout=60)
            cp = _CP(cp_id, link)
            cp.tasks += [
                asyncio.create_task(self._beat(cp)),
                asyncio.create_task(self._discard(link)),
            ]
            return cp

        self.cps = list(await asyncio.gather(*(one(c, s) for c, s in creds.items())))

    async def _beat(self, cp: _CP) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                cp.link.send(MessageType.HEARTBEAT, {"engine_ok": cp.engine_ok})
                await asyncio.sleep(self.heartbeat)

    @staticmethod
    async def _discard(link: ClientLink) -> None:
        """Read what Central says (STATUS after each change) so nothing piles up."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await link.recv()

    async def run(self, rate: float, seconds: float, tick: float = 0.005) -> float:
        """Flip engines at ``rate``/s for ``seconds``; return the seconds it really took."""
        start = time.perf_counter()
        sent, turn, report_at = 0, 0, start + 5
        while (elapsed := time.perf_counter() - start) < seconds:
            due = int(rate * elapsed) - sent
            for _ in range(due):
                cp = self.cps[turn % len(self.cps)]
                turn += 1
                cp.engine_ok = not cp.engine_ok
                body: dict[str, Any] = {"ok": cp.engine_ok}
                if not cp.engine_ok:
                    body["reason"] = "engine KO"
                with contextlib.suppress(ConnectionClosed):
                    cp.link.send(MessageType.ENGINE_STATUS, body)
                    self.sends.append(
                        Seen(time.time(), cp.cp_id, ACTIVATED if cp.engine_ok else BROKEN)
                    )
            sent += max(due, 0)
            if time.perf_counter() >= report_at:
                report_at += 5
                print(f"  {elapsed:4.0f} s: {sent} changes sent", flush=True)
            await asyncio.sleep(tick)
        return time.perf_counter() - start

    async def close(self) -> None:
        for cp in self.cps:
            for task in cp.tasks:
                task.cancel()
        await asyncio.gather(*(cp.link.close() for cp in self.cps), return_exceptions=True)
