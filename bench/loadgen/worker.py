"""One worker process's share of the fleet, on its own event loop.

It connects its CPs (monitor, then engine) and drivers, each from a loopback address of
its own; then heart-beats, charges (driver request, authorisation, telemetry, ticket) and
operator stop/resume commands through API_Central, and reports a window's counters. The
coordinator (``bench.loadgen.coordinator``) runs :func:`worker_main` in a child process
and sends it commands over a pipe.

A worker drives its sockets with ``asyncio.Protocol`` callbacks rather than
``common.client`` (a StreamReader and a task per connection): the same sans-IO protocol
objects, about half the CPU per message, which the machine's cores are better spent on.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing.connection
import random
import time
from dataclasses import dataclass, replace
from typing import Any

from bench import procs
from bench.loadgen.link import LoadLink
from bench.loadgen.metrics import Histogram, Stats
from bench.loadgen.mix import Mix, Plan, Target
from common.central_api import CentralApiClient, CentralApiError, path_segment
from common.client import scrypt_floor
from common.protocol.errors import ProtocolError
from common.protocol.handshake import ClientHandshake, Role
from common.protocol.messages import Message, MessageType

__all__ = ["Worker", "worker_main"]

TICK = 0.01  # heart-beat pacing step (s)
HEARTBEAT = {"engine_ok": True}
CONNECT_TIMEOUT = 60.0


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


class Worker:
    """One process's share of the fleet, on its own event loop."""

    def __init__(self, target: Target, plan: Plan, mix: Mix, operator_share: float) -> None:
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
        self._api = CentralApiClient(target.api or "", target.token, timeout=10)

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
        path = f"/chargepoints/{path_segment(cp.id)}/{command}"
        self.stats.operator_commands += 1
        try:
            await asyncio.to_thread(self._api.call, "POST", path, write=True)
            done = await asyncio.wait_for(told, 10)
        except (CentralApiError, TimeoutError) as exc:
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
        self._api.close()


def worker_main(
    pipe: multiprocessing.connection.Connection,
    target: Target,
    plan: Plan,
    mix: Mix,
    share: float,
) -> None:
    """Entry point of a worker process: obey the coordinator's commands over ``pipe``."""
    procs.raise_nofile()

    async def serve() -> None:
        worker = Worker(target, plan, mix, share)
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
