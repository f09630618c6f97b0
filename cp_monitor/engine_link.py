"""The monitor's link to its engine: pairing handshake, health checks, key hand-over.

Connects with the site pairing key (the engine serves the key-based handshake), then
sends ``health_check`` every second; a reply within the period says OK or KO, no
reply says "not answering", no link says "unreachable". The engine also pushes
``engine_status`` when its health changes, so a fault is seen at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from common.backoff import Backoff
from common.chargepoint.terminal import Level
from common.client import (
    AuthenticationFailed,
    CentralUnreachable,
    ClientLink,
    ConnectionClosed,
    connect,
)
from common.config import HostPort
from common.protocol.handshake import Role
from common.protocol.messages import Message, MessageType
from cp_monitor.health import EngineHealth, HealthTracker, Observation

__all__ = ["EngineWatch"]

PERIOD = 1.0  # one health check a second; a reply must come within it
CONNECT_TIMEOUT = 2.0


class EngineWatch:
    """Keeps the engine link up and its health known.

    Args:
        addr: the engine's monitor link.
        cp_id: this charge point.
        pairing_key: the site key shared with the engine.
        on_change: called with the new health whenever it changes.
        notify: shows a line to the user.
    """

    def __init__(
        self,
        addr: HostPort,
        cp_id: str,
        pairing_key: bytes,
        on_change: Callable[[EngineHealth], None],
        notify: Callable[[Level, str], None],
    ) -> None:
        self._addr = addr
        self._cp_id = cp_id
        self._pairing_key = pairing_key
        self._on_change = on_change
        self._notify = notify
        self.tracker = HealthTracker()
        self._link: ClientLink | None = None
        self._key: bytes | None = None
        self._reply: asyncio.Future[Message] | None = None
        self._swallow_until = 0.0
        self._backoff = Backoff(0.25, 2.0)
        self._said_unreachable = False
        self._reader: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._link is not None and not self._link.closed

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    @property
    def swallowing(self) -> bool:
        return self._now() < self._swallow_until

    def hand_key(self, key: bytes | None) -> None:
        """The session key Central issued (None once revoked); passed on when connected."""
        self._key = key
        if key is not None:
            self._send_key()

    def _send_key(self) -> None:
        if self._key is not None and self._link is not None and not self._link.closed:
            with contextlib.suppress(ConnectionClosed):
                self._link.send(MessageType.SESSION_KEY, {"key": self._key.decode("ascii")})
                self._notify(Level.INFO, "Session key handed to the engine")

    def inject(self, ok: bool) -> None:
        """Fault injection: tell the engine to report KO (or OK), as a technician would."""
        link = self._link
        if link is None or link.closed:
            self._notify(Level.WARN, "The engine is not connected: cannot change its health")
            return
        body = {"ok": True} if ok else {"ok": False, "reason": "marked KO by a technician"}
        with contextlib.suppress(ConnectionClosed):
            link.send(MessageType.ENGINE_STATUS, body)
        self._notify(Level.INFO, f"Told the engine to report {'OK' if ok else 'KO'}")

    def swallow(self, seconds: float) -> None:
        """Fault injection: ignore the engine's health answers for ``seconds``."""
        self._swallow_until = self._now() + seconds
        self._notify(Level.WARN, f"Ignoring the engine's health answers for {seconds:g} s")

    def _observe(self, observation: Observation, reason: str = "") -> None:
        change = self.tracker.observe(observation, reason)
        if change is None:
            return
        if change.ok:
            self._notify(Level.GOOD, "Engine healthy")
        else:
            self._notify(Level.BAD, f"Engine fault: {change.reason}")
        self._on_change(change)

    async def run(self) -> None:
        while True:
            started = self._now()
            if not self.connected and not await self._connect():
                continue
            await self._check()
            await asyncio.sleep(max(0.0, started + PERIOD - self._now()))

    async def _connect(self) -> bool:
        try:
            link = await connect(
                self._addr,
                Role.ENGINE,
                self._cp_id,
                session_key=self._pairing_key,
                timeout=CONNECT_TIMEOUT,
            )
        except CentralUnreachable:
            self._observe(Observation.UNREACHABLE)
            if not self._said_unreachable:
                self._notify(Level.WARN, f"Cannot reach the engine at {self._addr}; retrying")
                self._said_unreachable = True
            await asyncio.sleep(self._backoff.next())
            return False
        except AuthenticationFailed:
            self._observe(Observation.UNREACHABLE)
            self._notify(
                Level.BAD,
                "The engine refused our pairing key: give both the same "
                "--pairing-key-file (or EV_CP_PAIRING_KEY)",
            )
            await asyncio.sleep(5.0)
            return False
        self._backoff.reset()
        self._said_unreachable = False
        self._link = link
        self._notify(Level.GOOD, f"Connected to the engine at {self._addr}")
        self._reader = asyncio.create_task(self._read(link))
        self._send_key()
        return True

    async def _check(self) -> None:
        link = self._link
        if link is None:
            return
        reply: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._reply = reply
        try:
            link.send(MessageType.HEALTH_CHECK, {})
            msg = await asyncio.wait_for(reply, PERIOD)
        except TimeoutError:
            self._observe(Observation.NO_ANSWER if self.connected else Observation.UNREACHABLE)
            return
        except ConnectionClosed:
            return
        finally:
            self._reply = None
        if msg.body.get("ok") is True:
            self._observe(Observation.OK)
        else:
            self._observe(Observation.KO, str(msg.body.get("reason") or ""))

    async def _read(self, link: ClientLink) -> None:
        while True:
            try:
                msg = await link.recv()
            except ConnectionClosed:
                break
            if msg.type in (MessageType.HEALTH_REPLY, MessageType.ENGINE_STATUS):
                if self.swallowing:
                    continue
                if msg.type is MessageType.ENGINE_STATUS:  # pushed: a change, now
                    ok = msg.body.get("ok") is True
                    self._observe(
                        Observation.OK if ok else Observation.KO, msg.body.get("reason", "")
                    )
                elif self._reply is not None and not self._reply.done():
                    self._reply.set_result(msg)
            elif msg.type is MessageType.ERROR:
                self._notify(Level.WARN, f"Engine: {msg.body.get('reason')}")
        if self._link is link:
            self._link = None
            if self._reply is not None and not self._reply.done():
                self._reply.set_exception(ConnectionClosed("engine link closed"))
            self._notify(Level.BAD, "Lost the link to the engine")
            self._observe(Observation.UNREACHABLE)
        await link.close()

    async def close(self) -> None:
        if self._link is not None:
            link, self._link = self._link, None
            await link.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
