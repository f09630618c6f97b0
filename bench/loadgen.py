"""Load generator: N charge points (monitor + engine each) and D drivers against Central.

    python -m bench.loadgen --cps 2000 --duration 30

Every connection is really authenticated (the project's ``ClientHandshake``) and really
encrypted (its ``Connection``: framing, Fernet, sequence numbers), from a few worker
processes (``--workers``), each using its own source address 127.0.0.x. The mix: every
monitor heart-beats (1 Hz); a share of CPs (``--supplying``) charges a driver's vehicle
and sends telemetry (1 Hz), each session ending after ``--session-seconds`` and its driver
asking again; an operator stops and resumes idle CPs through API_Central
(``--operator-rate``). Recorded, with histograms: send → ACK for every frame, driver
request → authorisation, operator command → the CP's monitor told; and every error:
NACKs, frames Central sent that we rejected, dropped connections, denials, timeouts.

With ``bare`` targets (``bench.bare``) there is no handshake: every connection is secured
with a shared key, and only heart-beats (or a fixed rate, ``rate=``) are sent.

A worker drives its sockets with ``asyncio.Protocol`` callbacks rather than
``common.client`` (a StreamReader and a task per connection): the same sans-IO protocol
objects, about half the CPU per message, which the machine's cores are better spent on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import multiprocessing.connection
import random
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import requests

from bench import procs
from bench.report import report
from common.client import scrypt_floor
from common.db.provision import Provisioned
from common.protocol import (
    NEED_DATA,
    AckReceived,
    Connection,
    MessageReceived,
    NackReceived,
)
from common.protocol.errors import ProtocolError
from common.protocol.handshake import ClientHandshake, Role
from common.protocol.messages import Message, MessageType, Side

__all__ = [
    "Histogram",
    "LoadGenerator",
    "Mix",
    "Target",
    "Window",
    "main",
    "run_against_central",
]

TICK = 0.01  # heart-beat pacing step (s)
HEARTBEAT = {"engine_ok": True}
CONNECT_TIMEOUT = 60.0
STORM_PROFILE_S = 20  # how long a profile of the connect storm samples Central


# ------------------------------------------------------------------ histogram
class Histogram:
    """Latencies in log-spaced buckets 2 % wide from 1 µs: O(1) to add, mergeable."""

    GROWTH = 1.02
    BUCKETS = 1200  # 1.02 ** 1200 µs ≈ 5 days
    _LOG = math.log(GROWTH)

    def __init__(self, counts: Sequence[int] | None = None, peak: float = 0.0) -> None:
        self.counts = list(counts) if counts is not None else [0] * self.BUCKETS
        self.peak = peak

    def add(self, seconds: float) -> None:
        micros = seconds * 1e6
        index = int(math.log(micros) / self._LOG) if micros > 1 else 0
        self.counts[min(index, self.BUCKETS - 1)] += 1
        if seconds > self.peak:
            self.peak = seconds

    def merge(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.peak = max(self.peak, other.peak)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float:
        """Upper edge (s) of the bucket holding quantile ``q`` (0 when empty)."""
        total = self.total
        if not total:
            return 0.0
        rank = q * total
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return min(self.GROWTH ** (index + 1) / 1e6, self.peak)
        return self.peak

    def ms(self, q: float) -> float:
        return round(1000 * self.quantile(q), 2)


# ----------------------------------------------------------------- the links
class Stats:
    """One worker's counters for the current window."""

    COUNTERS = (
        "sent",
        "acked",
        "nacked",
        "rejected",
        "dropped",
        "central_errors",
        "denied",
        "authorized",
        "operator_commands",
        "operator_timeouts",
        "telemetry",
        "tickets",
    )

    def __init__(self) -> None:
        self.connect = Histogram()
        self.reset()

    def reset(self) -> None:
        self.ack = Histogram()
        self.auth = Histogram()
        self.op = Histogram()
        for name in self.COUNTERS:
            setattr(self, name, 0)

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self.COUNTERS}
        for name in ("ack", "auth", "op", "connect"):
            hist = getattr(self, name)
            out[name] = (hist.counts, hist.peak)
        return out


Handler = Callable[["LoadLink", Message], None]


class LoadLink(asyncio.Protocol):
    """One client connection driven by callbacks: handshake, then measured sends."""

    def __init__(self, stats: Stats) -> None:
        self.conn = Connection(time.time)
        self.stats = stats
        self.handler: Handler = lambda link, msg: None
        self.transport: asyncio.Transport | None = None
        self.sent: deque[float] = deque()  # send time of each unanswered frame (0: unmeasured)
        self.ready: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.closing = False
        self.state: str | None = None  # the last state Central told (monitors)
        self._handshake: ClientHandshake | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def authenticate(self, handshake: ClientHandshake) -> None:
        self._handshake = handshake
        hello = handshake.start()
        self._write(hello.type, hello.body, 0.0)

    def secure_now(self, key: bytes) -> None:
        """Bare mode: no handshake, the shared key at once."""
        self.conn.secure(key, Side.CLIENT)
        self.ready.set_result(key)

    def send(self, msg_type: MessageType, body: dict[str, Any]) -> bool:
        """Send a measured frame (its ACK latency is recorded); False once closed."""
        if self.closed:
            return False
        self.stats.sent += 1
        self._write(msg_type, body, time.perf_counter())
        return True

    def _write(self, msg_type: MessageType, body: dict[str, Any], stamp: float) -> None:
        assert self.transport is not None
        frame = self.conn.send(msg_type, body)
        self.sent.append(stamp)
        self.transport.write(frame)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        conn, stats, sent = self.conn, self.stats, self.sent
        conn.receive_data(data)
        while (event := conn.next_event()) is not NEED_DATA:
            kind = type(event)
            if kind is AckReceived:
                stamp = sent.popleft() if sent else 0.0
                if stamp:
                    stats.acked += 1
                    stats.ack.add(now - stamp)
            elif kind is MessageReceived:
                assert isinstance(event, MessageReceived)
                msg = event.message
                if self._handshake is not None:
                    self._on_handshake(msg)
                else:
                    if msg.type is MessageType.STATUS and "state" in msg.body:
                        self.state = str(msg.body["state"])
                    self.handler(self, msg)
            elif kind is NackReceived:
                if sent and sent.popleft():
                    stats.nacked += 1
            else:
                stats.rejected += 1
        out = conn.data_to_send()
        if out and self.transport is not None:
            self.transport.write(out)

    def _on_handshake(self, msg: Message) -> None:
        handshake = self._handshake
        assert handshake is not None
        try:
            reply = handshake.receive(msg)
        except ProtocolError as exc:
            self._handshake = None
            if not self.ready.done():
                self.ready.set_exception(exc)
            self.close()
            return
        if reply is not None:
            self._write(reply.type, reply.body, 0.0)
        key = handshake.session_key
        if key is not None:
            self._handshake = None
            self.conn.secure(key, Side.CLIENT)
            self.ready.set_result(key)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.closing:
            self.stats.dropped += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("connection lost"))

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


# ------------------------------------------------------------------- workers
@dataclass(frozen=True)
class Target:
    """Where the load goes: Central (handshake, API) or a bare server (shared key)."""

    host: str
    port: int
    bare_key: bytes | None = None
    api: str | None = None
    token: str | None = None


@dataclass(frozen=True)
class Mix:
    heartbeat_hz: float = 0.2  # Central's default interval, 5 s
    engines: bool = True  # connect an engine per CP (not needed for pure heart-beat load)
    supplying: float = 0.10  # share of CPs charging a driver's vehicle
    telemetry_hz: float = 1.0
    session_seconds: float = 60.0  # a charge ends (ticket) after this; its driver asks again
    operator_rate: float = 0.5  # operator commands per second, all workers together
    concurrency: int = 100  # connection attempts in flight per worker


@dataclass
class _CP:
    id: str
    secret: str
    monitor: LoadLink | None = None
    engine: LoadLink | None = None
    driver: _Driver | None = None
    session: str | None = None
    kwh: float = 0.0
    waiting: tuple[str, asyncio.Future[float]] | None = None  # state the operator awaits


@dataclass
class _Driver:
    id: str
    secret: str
    cp: _CP
    link: LoadLink | None = None
    asked_at: float = 0.0


@dataclass(frozen=True)
class _Plan:
    index: int
    cps: list[tuple[str, str]]
    drivers: list[tuple[str, str, str]]  # driver id, secret, the CP it charges at


class _Worker:
    """One process's share of the fleet, on its own event loop."""

    def __init__(self, target: Target, plan: _Plan, mix: Mix, operator_share: float) -> None:
        self.target, self.plan, self.mix = target, plan, mix
        self.stats = Stats()
        self.cps = [_CP(cp_id, secret) for cp_id, secret in plan.cps]
        by_id = {cp.id: cp for cp in self.cps}
        self.drivers = [_Driver(d, s, by_id[c]) for d, s, c in plan.drivers]
        for driver in self.drivers:
            driver.cp.driver = driver
        self.monitors: list[LoadLink] = []
        self.rate: float | None = None  # fixed heart-beat rate of this worker (None: per CP)
        self.sending = True
        self.operator_rate = mix.operator_rate * operator_share
        self._tasks: list[asyncio.Task[Any]] = []
        self._http = requests.Session()

    # -- connecting
    async def _open(
        self,
        role: Role,
        principal: str,
        source: str,
        *,
        secret: str | None = None,
        key: bytes | None = None,
    ) -> LoadLink:
        loop = asyncio.get_running_loop()
        _, link = await loop.create_connection(
            lambda: LoadLink(self.stats),
            self.target.host,
            self.target.port,
            local_addr=(source, 0),
        )
        if self.target.bare_key is not None:
            link.secure_now(self.target.bare_key)
        else:
            link.authenticate(
                ClientHandshake(role, principal, secret, key, clock=time.time, min_n=scrypt_floor())
            )
        await asyncio.wait_for(link.ready, CONNECT_TIMEOUT)
        return link

    def _source(self, n: int, drivers: bool = False) -> str:
        """Each CP (each driver) has an address of its own, as in the field: Central limits
        concurrent and failed handshakes per source address."""
        first = self.plan.index + (101 if drivers else 1)
        return f"127.{first}.{n // 250}.{n % 250 + 2}"

    async def _connect_cp(self, n: int, cp: _CP, gate: asyncio.Semaphore) -> bool:
        async with gate:
            started = time.perf_counter()
            source = self._source(n)
            try:
                cp.monitor = await self._open(Role.MONITOR, cp.id, source, secret=cp.secret)
                cp.monitor.handler = lambda link, msg: self._on_monitor(cp, msg)
                self.monitors.append(cp.monitor)
                if self.mix.engines:
                    cp.engine = await self._open(
                        Role.ENGINE, cp.id, source, key=cp.monitor.ready.result()
                    )
                    cp.engine.handler = lambda link, msg: self._on_engine(cp, msg)
                    cp.engine.send(MessageType.STATUS, {"supplying": False, "kwh": 0})
            except (OSError, ProtocolError, TimeoutError) as exc:
                print(f"worker {self.plan.index}: {cp.id} failed to connect: {exc!r}", flush=True)
                return False
            self.stats.connect.add(time.perf_counter() - started)
            return True

    async def _connect_driver(self, n: int, driver: _Driver, gate: asyncio.Semaphore) -> bool:
        async with gate:
            try:
                driver.link = await self._open(
                    Role.DRIVER, driver.id, self._source(n, drivers=True), secret=driver.secret
                )
            except (OSError, ProtocolError, TimeoutError) as exc:
                print(f"worker {self.plan.index}: {driver.id} failed: {exc!r}", flush=True)
                return False
            driver.link.handler = lambda link, msg: self._on_driver(driver, msg)
            return True

    async def connect(self) -> dict[str, Any]:
        self._tasks.append(asyncio.create_task(self._heartbeats()))
        return await self._connect_all()

    async def reconnect(self, host: str, port: int, within: float) -> dict[str, Any]:
        """Central was restarted under us: every CP and driver logs in again at once.

        Also reports how long until every monitor was told ACTIVATED (``activated_s``,
        None if not all were within ``within`` seconds).
        """
        started = time.perf_counter()
        self.stats.connect = Histogram()
        self.target = replace(self.target, host=host, port=port)
        for link in self._links():
            link.close()
        for cp in self.cps:
            cp.monitor = cp.engine = None
            cp.session, cp.waiting = None, None
        for driver in self.drivers:
            driver.link = None
        self.monitors = []
        self.sending = True  # connected monitors heart-beat on while the rest log in
        out = await self._connect_all()
        monitors = [cp.monitor for cp in self.cps if cp.monitor is not None]
        while time.perf_counter() - started < within:
            if all(link.state == "ACTIVATED" for link in monitors):
                out["activated_s"] = time.perf_counter() - started
                break
            await asyncio.sleep(0.05)
        else:
            out["activated_s"] = None
        out["not_activated"] = sum(link.state != "ACTIVATED" for link in monitors)
        return out

    async def _connect_all(self) -> dict[str, Any]:
        started = time.perf_counter()
        gate = asyncio.Semaphore(self.mix.concurrency)
        ok = await asyncio.gather(*(self._connect_cp(n, cp, gate) for n, cp in enumerate(self.cps)))
        cps_seconds = time.perf_counter() - started
        drivers_ok = await asyncio.gather(
            *(self._connect_driver(n, d, gate) for n, d in enumerate(self.drivers))
        )
        return {
            "cps": sum(ok),
            "cps_failed": len(ok) - sum(ok),
            "drivers": sum(drivers_ok),
            "drivers_failed": len(drivers_ok) - sum(drivers_ok),
            "seconds": cps_seconds,
            "connect": (self.stats.connect.counts, self.stats.connect.peak),
        }

    # -- traffic
    async def _heartbeats(self) -> None:
        loop = asyncio.get_running_loop()
        last, credit, i = loop.time(), 0.0, 0
        while True:
            await asyncio.sleep(TICK)
            now = loop.time()
            elapsed, last = now - last, now
            monitors = self.monitors
            if not self.sending or not monitors:
                credit = 0.0
                continue
            rate = self.rate if self.rate is not None else len(monitors) * self.mix.heartbeat_hz
            credit = min(credit + rate * elapsed, rate)  # catch up at most one second
            count = int(credit)
            credit -= count
            size = len(monitors)
            for _ in range(count):
                monitors[i % size].send(MessageType.HEARTBEAT, HEARTBEAT)
                i += 1

    def start_charging(self) -> None:
        """Drivers ask for their charges (spread over two seconds); the operator starts."""
        loop = asyncio.get_running_loop()
        for driver in self.drivers:
            loop.call_later(random.uniform(0, 2), self._request, driver)
        if self.operator_rate > 0 and self.target.api:
            self._tasks.append(asyncio.create_task(self._operator()))

    def _request(self, driver: _Driver) -> None:
        if self.sending and driver.link is not None and driver.cp.session is None:
            driver.asked_at = time.perf_counter()
            driver.link.send(MessageType.CHARGE_REQUEST, {"cp_id": driver.cp.id, "target_kwh": 500})

    def _on_driver(self, driver: _Driver, msg: Message) -> None:
        kind = msg.type
        if kind is MessageType.CHARGE_AUTHORIZED:
            if driver.asked_at:
                self.stats.auth.add(time.perf_counter() - driver.asked_at)
                self.stats.authorized += 1
                driver.asked_at = 0.0
        elif kind is MessageType.CHARGE_DENIED:
            self.stats.denied += 1
            driver.asked_at = 0.0
            asyncio.get_running_loop().call_later(2.0, self._request, driver)
        elif kind is MessageType.TICKET:
            self.stats.tickets += 1
            asyncio.get_running_loop().call_later(1.0, self._request, driver)
        elif kind is MessageType.ERROR:
            self.stats.central_errors += 1

    def _on_engine(self, cp: _CP, msg: Message) -> None:
        kind, body = msg.type, msg.body
        link = cp.engine
        assert link is not None
        if kind is MessageType.AUTHORIZE_SUPPLY:
            session = str(body["session_id"])
            link.send(MessageType.CHARGE_AUTHORIZED, {"session_id": session})
            link.send(MessageType.SUPPLY_STARTED, {"session_id": session})  # plugged at once
            cp.session, cp.kwh = session, 0.0
            loop = asyncio.get_running_loop()
            loop.call_later(1 / self.mix.telemetry_hz, self._telemetry, cp, session)
            loop.call_later(self.mix.session_seconds, self._unplug, cp, session)
        elif kind is MessageType.STOP:
            cp.session = None
        elif kind in (MessageType.ERROR, MessageType.KEY_REVOKED):
            self.stats.central_errors += 1

    def _telemetry(self, cp: _CP, session: str) -> None:
        if cp.session != session or cp.engine is None or not self.sending:
            return
        cp.kwh += 11.0 / 3600 / self.mix.telemetry_hz
        if cp.engine.send(
            MessageType.TELEMETRY, {"session_id": session, "kwh": round(cp.kwh, 4), "kw": 11.0}
        ):
            self.stats.telemetry += 1
        asyncio.get_running_loop().call_later(
            1 / self.mix.telemetry_hz, self._telemetry, cp, session
        )

    def _unplug(self, cp: _CP, session: str) -> None:
        if cp.session == session and cp.engine is not None and self.sending:
            cp.session = None
            cp.engine.send(
                MessageType.SUPPLY_ENDED,
                {"session_id": session, "kwh": round(cp.kwh, 4), "reason": "unplugged"},
            )

    def _on_monitor(self, cp: _CP, msg: Message) -> None:
        kind = msg.type
        if kind is MessageType.STATUS:
            waiting = cp.waiting
            if waiting is not None and msg.body.get("state") == waiting[0]:
                cp.waiting = None
                if not waiting[1].done():
                    waiting[1].set_result(time.perf_counter())
        elif kind in (MessageType.ERROR, MessageType.KEY_REVOKED):
            self.stats.central_errors += 1

    async def _operator(self) -> None:
        idle = [cp for cp in self.cps if cp.driver is None and cp.monitor is not None]
        while self.sending and idle:
            await asyncio.sleep(random.expovariate(self.operator_rate / 2))
            cp = random.choice(idle)
            if await self._command(cp, "stop", "STOPPED"):
                await self._command(cp, "resume", "ACTIVATED")

    async def _command(self, cp: _CP, command: str, state: str) -> bool:
        """POST the command; the latency ends when the CP's monitor is told the new state."""
        told: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        cp.waiting = (state, told)
        started = time.perf_counter()
        url = f"{self.target.api}/chargepoints/{cp.id}/{command}"
        headers = {"Authorization": f"Bearer {self.target.token}"}
        self.stats.operator_commands += 1
        try:
            response = await asyncio.to_thread(self._http.post, url, headers=headers, timeout=10)
            response.raise_for_status()
            done = await asyncio.wait_for(told, 10)
        except (requests.RequestException, TimeoutError) as exc:
            print(f"worker {self.plan.index}: operator {command} {cp.id}: {exc!r}", flush=True)
            self.stats.operator_timeouts += 1
            cp.waiting = None
            return False
        self.stats.op.add(done - started)
        return True

    # -- windows
    async def measure(self, seconds: float, rate: float | None) -> dict[str, Any]:
        self.rate = rate
        self.stats.reset()
        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        out = self.stats.snapshot()
        out["seconds"] = time.perf_counter() - started
        out["cpu"] = time.process_time() - cpu
        return out

    async def drain(self, grace: float) -> dict[str, Any]:
        """Stop sending; wait up to ``grace`` for every sent frame to be answered."""
        self.sending = False
        links = self._links()
        deadline = time.perf_counter() + grace
        while time.perf_counter() < deadline:
            if not any(link.sent and not link.closed for link in links):
                break
            await asyncio.sleep(0.1)
        unanswered = sum(len(link.sent) for link in links if not link.closed)
        lost_on_close = sum(len(link.sent) for link in links if link.closed)
        return {
            "unanswered": unanswered,
            "unanswered_on_dropped": lost_on_close,
            "dropped_total": sum(link.closed and not link.closing for link in links),
        }

    def _links(self) -> list[LoadLink]:
        """Every open or opened link of this worker: monitors, engines, drivers."""
        links = [link for cp in self.cps for link in (cp.monitor, cp.engine) if link is not None]
        return links + [d.link for d in self.drivers if d.link is not None]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for link in self._links():
            link.close()
        await asyncio.sleep(0.2)
        self._http.close()


def _worker_main(
    pipe: multiprocessing.connection.Connection,
    target: Target,
    plan: _Plan,
    mix: Mix,
    share: float,
) -> None:
    """Entry point of a worker process: obey the coordinator's commands over ``pipe``."""
    procs.raise_nofile()

    async def serve() -> None:
        worker = _Worker(target, plan, mix, share)
        loop = asyncio.get_running_loop()
        try:
            while True:
                command, *args = await loop.run_in_executor(None, pipe.recv)
                if command == "connect":
                    pipe.send(await worker.connect())
                elif command == "charge":
                    worker.start_charging()
                    pipe.send(None)
                elif command == "measure":
                    pipe.send(await worker.measure(*args))
                elif command == "drain":
                    pipe.send(await worker.drain(*args))
                elif command == "reconnect":
                    pipe.send(await worker.reconnect(*args))
                else:
                    break
        finally:
            await worker.close()

    with contextlib.suppress(KeyboardInterrupt, EOFError, BrokenPipeError):
        asyncio.run(serve())


# --------------------------------------------------------------- coordinator
@dataclass
class Window:
    """The load of one measured window, all workers merged."""

    seconds: float
    counters: dict[str, int]
    ack: Histogram
    auth: Histogram
    op: Histogram
    loadgen_cpu_seconds: float

    def summary(self) -> dict[str, Any]:
        c = self.counters
        return {
            "rate_msg_s": round(c["acked"] / self.seconds, 1),
            "sent": c["sent"],
            "acked": c["acked"],
            "ack_p50_ms": self.ack.ms(0.50),
            "ack_p99_ms": self.ack.ms(0.99),
            "ack_p999_ms": self.ack.ms(0.999),
            "ack_max_ms": round(1000 * self.ack.peak, 1),
            "auth_n": self.auth.total,
            "auth_p50_ms": self.auth.ms(0.50),
            "auth_p99_ms": self.auth.ms(0.99),
            "op_n": self.op.total,
            "op_p50_ms": self.op.ms(0.50),
            "op_p99_ms": self.op.ms(0.99),
            "nacked": c["nacked"],
            "rejected": c["rejected"],
            "dropped": c["dropped"],
            "central_errors": c["central_errors"],
            "denied": c["denied"],
            "op_failed": c["operator_timeouts"],
            "loadgen_cpu_pct": round(100 * self.loadgen_cpu_seconds / self.seconds, 1),
        }

    @property
    def errors(self) -> int:
        c = self.counters
        keys = ("nacked", "rejected", "dropped", "central_errors", "denied", "operator_timeouts")
        return sum(c[k] for k in keys)


class LoadGenerator:
    """Worker processes sharing a fleet; each call runs a step in all of them at once.

    with LoadGenerator(target, fleet, mix, workers=2) as gen:
        gen.connect(); gen.charge(); window = gen.measure(30)
    """

    def __init__(
        self,
        target: Target,
        fleet: Provisioned,
        mix: Mix,
        *,
        workers: int = 2,
    ) -> None:
        cps = list(fleet.cps.items())
        supplying = round(len(cps) * mix.supplying) if mix.engines else 0
        drivers = list(zip(fleet.drivers.items(), cps[:supplying], strict=False))
        self._ctx = multiprocessing.get_context("spawn")
        self._pipes: list[multiprocessing.connection.Connection] = []
        self._procs: list[Any] = []
        self._plans = [
            _Plan(
                i,
                cps[i::workers],
                [(d, s, cp) for (d, s), (cp, _) in drivers[i::workers]],
            )
            for i in range(workers)
        ]
        self._target, self._mix = target, mix

    def __enter__(self) -> LoadGenerator:
        procs.raise_nofile()
        for plan in self._plans:
            mine, theirs = self._ctx.Pipe()
            proc = self._ctx.Process(
                target=_worker_main,
                args=(theirs, self._target, plan, self._mix, 1 / len(self._plans)),
                name=f"loadgen-{plan.index}",
                daemon=True,
            )
            proc.start()
            self._pipes.append(mine)
            self._procs.append(proc)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def _all(self, *command: Any, timeout: float = 600) -> list[Any]:
        for pipe in self._pipes:
            pipe.send(command)
        out = []
        for pipe, proc in zip(self._pipes, self._procs, strict=True):
            if not pipe.poll(timeout):
                raise RuntimeError(f"{proc.name} did not answer {command[0]!r} in {timeout} s")
            out.append(pipe.recv())
        return out

    def connect(self) -> dict[str, Any]:
        """Connect and authenticate every CP (monitor, engine), then every driver."""
        return self._merge_connect(self._all("connect"))

    def reconnect(self, host: str, port: int, within: float = 120) -> dict[str, Any]:
        """Every CP and driver logs in again, to a Central restarted at ``host:port``."""
        parts = self._all("reconnect", host, port, within, timeout=within + 600)
        out = self._merge_connect(parts)
        times = [p["activated_s"] for p in parts]
        out["activated_s"] = None if None in times else max(times)
        out["not_activated"] = sum(p["not_activated"] for p in parts)
        return out

    @staticmethod
    def _merge_connect(parts: list[dict[str, Any]]) -> dict[str, Any]:
        hist = Histogram()
        for part in parts:
            hist.merge(Histogram(*part["connect"]))
        return {
            "cps": sum(p["cps"] for p in parts),
            "cps_failed": sum(p["cps_failed"] for p in parts),
            "drivers": sum(p["drivers"] for p in parts),
            "drivers_failed": sum(p["drivers_failed"] for p in parts),
            "seconds": max(p["seconds"] for p in parts),
            "per_cp_p50_ms": hist.ms(0.5),
            "per_cp_p99_ms": hist.ms(0.99),
        }

    def charge(self) -> None:
        """Drivers start asking for charges; the operator starts issuing commands."""
        self._all("charge")

    def measure(self, seconds: float, rate: float | None = None) -> Window:
        """Run for ``seconds`` (heart-beats at ``rate`` msg/s in all, or 1 Hz per CP)."""
        share = None if rate is None else rate / len(self._pipes)
        parts = self._all("measure", seconds, share, timeout=seconds + 120)
        counters = {name: sum(p[name] for p in parts) for name in Stats.COUNTERS}
        hists = {}
        for name in ("ack", "auth", "op"):
            hists[name] = Histogram()
            for part in parts:
                hists[name].merge(Histogram(*part[name]))
        return Window(
            max(p["seconds"] for p in parts),
            counters,
            hists["ack"],
            hists["auth"],
            hists["op"],
            sum(p["cpu"] for p in parts),
        )

    def drain(self, grace: float = 5.0) -> dict[str, int]:
        """Stop sending and count frames still unanswered after ``grace`` seconds."""
        parts = self._all("drain", grace, timeout=grace + 60)
        return {key: sum(p[key] for p in parts) for key in parts[0]}

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError, BrokenPipeError):
                pipe.send(("close",))
        for proc in self._procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        self._pipes.clear()
        self._procs.clear()


# ---------------------------------------------------------------- one run
@dataclass(frozen=True)
class RunOptions:
    cps: int = 1000
    duration: float = 30.0
    warmup: float = 5.0
    workers: int = 2
    mix: Mix = field(default_factory=Mix)
    central_args: tuple[str, ...] = ()
    profile: Path | None = None  # py-spy Central during the window, collapsed stacks here
    storm: bool = False  # then SIGKILL Central, restart it, and every CP logs in again


def _storm(
    opts: RunOptions,
    children: procs.Children,
    old: procs.CentralHandle,
    url: str,
    work: Path,
    gen: LoadGenerator,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Kill Central, start it again on the same database, and let the whole fleet log in."""
    log("connect storm: SIGKILL Central, start it again, every CP logs in at once ...")
    old.proc.kill()
    central = procs.start_central(
        children, url, work, extra_args=opts.central_args, name="central-restarted"
    )
    spy = None
    if opts.profile is not None:
        out = opts.profile.with_name(f"{opts.profile.stem}-storm{opts.profile.suffix}")
        spy = procs.profile(children, central.proc.pid, STORM_PROFILE_S, out)
    before = procs.proc_stats(central.proc.pid)
    again = gen.reconnect(*central.addr)
    after = procs.proc_stats(central.proc.pid)
    if spy is not None:
        spy.wait(STORM_PROFILE_S + 60)
    logins = 2 * again["cps"] + again["drivers"] if opts.mix.engines else again["cps"]
    cpu = after.cpu_seconds - before.cpu_seconds
    log(
        f"all logged in again in {again['seconds']:.1f} s; every monitor ACTIVATED after "
        f"{again['activated_s'] if again['activated_s'] is not None else 'never'} s"
    )
    return {
        "storm_logins": logins,
        "storm_failed": again["cps_failed"] + again["drivers_failed"],
        "storm_s": round(again["seconds"], 1),
        "storm_activated_s": None
        if again["activated_s"] is None
        else round(again["activated_s"], 1),
        "storm_not_activated": again["not_activated"],
        "storm_central_cpu_s": round(cpu, 1),
        "storm_central_ms_per_login": round(1000 * cpu / max(1, logins), 2),
    }


def run_against_central(opts: RunOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Provision, start Central, connect the fleet, run the mix, measure; one result row."""
    procs.raise_nofile()
    drivers = round(opts.cps * opts.mix.supplying)
    with tempfile.TemporaryDirectory(prefix="evbench-") as tmp, procs.Children() as children:
        work = Path(tmp)
        url = f"sqlite:///{work}/ev.db"
        log(f"provisioning {opts.cps} charge points and {drivers} drivers ...")
        fleet = procs.provision(url, opts.cps, drivers)
        central = procs.start_central(children, url, work, extra_args=opts.central_args)
        pid = central.proc.pid
        idle = procs.proc_stats(pid)
        target = Target(*central.addr, api=central.api, token=central.token)
        with LoadGenerator(target, fleet, opts.mix, workers=opts.workers) as gen:
            log(f"connecting {opts.cps} monitors + engines and {drivers} drivers ...")
            before = procs.proc_stats(pid)
            conn = gen.connect()
            after_connect = procs.proc_stats(pid)
            log(
                f"connected {conn['cps']} CPs ({conn['cps_failed']} failed) and "
                f"{conn['drivers']} drivers in {conn['seconds']:.1f} s"
            )
            gen.charge()
            log(f"warming up {opts.warmup:g} s (charges start, operator commands) ...")
            gen.measure(opts.warmup)
            log(f"measuring {opts.duration:g} s ...")
            spy = None
            if opts.profile is not None:
                spy = procs.profile(children, pid, opts.duration, opts.profile)
            start = procs.proc_stats(pid)
            window = gen.measure(opts.duration)
            end = procs.proc_stats(pid)
            if spy is not None:
                spy.wait(60)
            drained = gen.drain()
            storm = _storm(opts, children, central, url, work, gen, log) if opts.storm else {}
    row = {
        "cps": opts.cps,
        "connections": 2 * conn["cps"] + conn["drivers"] if opts.mix.engines else conn["cps"],
        "connect_s": round(conn["seconds"], 1),
        "connect_failed": conn["cps_failed"] + conn["drivers_failed"],
        "central_cpu_s_connecting": round(after_connect.cpu_seconds - before.cpu_seconds, 1),
        "central_rss_idle_mib": round(idle.rss_bytes / 2**20, 1),
        "central_rss_mib": round(end.rss_bytes / 2**20, 1),
        "rss_kib_per_cp": round((end.rss_bytes - idle.rss_bytes) / 1024 / max(1, opts.cps), 1),
        "central_cpu_pct": round(100 * (end.cpu_seconds - start.cpu_seconds) / window.seconds, 1),
        **window.summary(),
        "unanswered_at_end": drained["unanswered"] + drained["unanswered_on_dropped"],
        "heartbeat_interval_s": round(1 / opts.mix.heartbeat_hz, 2),
        **storm,
    }
    row["connect_per_cp_p99_ms"] = conn["per_cp_p99_ms"]
    return row


def mix_arguments(parser: argparse.ArgumentParser) -> None:
    """The load-mix flags every benchmark driving Central shares."""
    parser.add_argument(
        "--supplying", type=float, default=0.10, help="share of CPs charging (default 0.10)"
    )
    parser.add_argument(
        "--session-seconds",
        type=float,
        default=60.0,
        help="a charge ends after this, then its driver asks again (default 60)",
    )
    parser.add_argument(
        "--operator-rate",
        type=float,
        default=0.5,
        help="operator stop/resume commands per second through API_Central (default 0.5)",
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=float,
        default=1 / Mix.heartbeat_hz,
        help="seconds between each monitor's heart-beats (default 5, Central's default)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="load-generator processes (default 2)"
    )
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds of load before measuring (default 5)"
    )


def mix_of(args: argparse.Namespace) -> Mix:
    if args.heartbeat_interval <= 0:
        raise SystemExit("--heartbeat-interval must be positive")
    return replace(
        Mix(),
        heartbeat_hz=1 / args.heartbeat_interval,
        supplying=args.supplying,
        session_seconds=args.session_seconds,
        operator_rate=args.operator_rate,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.loadgen",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cps", type=int, default=1000, help="charge points (default 1000)")
    parser.add_argument(
        "--duration", type=float, default=30.0, help="seconds measured (default 30)"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="also sample Central with py-spy while measuring; collapsed stacks to this file",
    )
    mix_arguments(parser)
    args = parser.parse_args(argv)
    opts = RunOptions(
        cps=args.cps,
        duration=args.duration,
        warmup=args.warmup,
        workers=args.workers,
        mix=mix_of(args),
        profile=args.profile,
    )
    with procs.interrupts_as_exceptions():
        row = run_against_central(opts, lambda line: print(line, flush=True))
    report("loadgen", [row], meta={"mix": vars(opts.mix)})
    if args.profile is not None and args.profile.exists():
        report("loadgen_profile", procs.top_functions(args.profile))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
