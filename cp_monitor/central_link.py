"""The monitor's link to Central: authenticate with the secret, heart-beat, listen.

Once asked to, it stays authenticated: an unreachable Central is retried with
back-off ("Cannot reach Central ..."); a login Central delays after failed attempts
is retried once the delay Central names is over; a revoked key waits for the
re-authenticate command (or re-authenticates by itself in unattended mode). Every new
session key is handed to the engine through ``on_key``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from common.backoff import Backoff
from common.chargepoint.central_link import LOST, CentralLinkBase
from common.chargepoint.errors import SecretMissing
from common.chargepoint.secret_file import SecretFile
from common.chargepoint.terminal import Level
from common.client import (
    AuthenticationFailed,
    AuthenticationThrottled,
    CentralUnreachable,
    ClientLink,
    ConnectionClosed,
    OwnerUnreachable,
    WeakChallenge,
)
from common.config import Centrals, HostPort
from common.protocol.handshake import Role
from common.protocol.messages import Message, MessageType
from cp_monitor.health import EngineHealth, HealthTracker

__all__ = ["CentralSession"]

HEARTBEAT_BOUNDS = (0.1, 3600.0)  # an interval Central may ask for
CONNECT_TIMEOUT = 10.0
OWNER_RETRY = 0.5  # seconds (plus up to 0.5 s of jitter) between logins while the CP's
# Central fails over; the others refuse those at the hello, before any proof.
_STATE_LEVEL = {
    "ACTIVATED": Level.GOOD,
    "SUPPLYING": Level.GOOD,
    "STOPPED": Level.WARN,
    "BROKEN": Level.BAD,
    "DISCONNECTED": Level.BAD,
}


class CentralSession(CentralLinkBase):
    """The monitor's authenticated session with Central.

    Args:
        addr: Central's address.
        cp_id: this charge point.
        secrets: where the CP's secret is.
        tracker: the engine's health, reported in every heartbeat.
        on_key: receives each new session key (None when it is gone).
        notify: shows a line to the user.
        auto: re-authenticate by itself after a revocation or a refusal.
        heartbeat_interval: seconds between heart-beats until Central says otherwise.
    """

    def __init__(
        self,
        addr: HostPort | Centrals,
        cp_id: str,
        secrets: SecretFile,
        tracker: HealthTracker,
        on_key: Callable[[bytes | None], None],
        notify: Callable[[Level, str], None],
        *,
        auto: bool = False,
        heartbeat_interval: float = 5.0,
    ) -> None:
        super().__init__(addr, cp_id, notify, Backoff(0.5, 5.0))
        self._secrets = secrets
        self._tracker = tracker
        self._on_key = on_key
        self.auto = auto
        self.heartbeat_interval = heartbeat_interval
        self._retimed = asyncio.Event()  # Central asked for another interval
        self.state: str | None = None  # Central's last word on our state
        self._want = False
        self._pause_until = 0.0
        self._local_close = False

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    # ------------------------------------------------------------ commands
    def authenticate(self) -> None:
        if self.connected:
            self._notify(Level.INFO, "Already authenticated with Central")
            return
        self._want, self._pause_until = True, 0.0
        self._backoff.reset()
        self._wake.set()

    def reauthenticate(self) -> None:
        self._want, self._pause_until = True, 0.0
        self._backoff.reset()
        if self._link is not None:
            self._drop(self._link, bye=True)
        self._wake.set()

    def stop(self) -> None:
        """Stay away from Central (deregistered, quitting)."""
        self._want = False
        if self._link is not None:
            self._drop(self._link, bye=True)
        self._wake.set()

    def lose_link(self, seconds: float) -> None:
        """Fault injection: stop heart-beating and drop the connection for ``seconds``."""
        link = self._link
        if link is None:
            self._notify(Level.WARN, "Not connected to Central: no link to lose")
            return
        self._notify(Level.WARN, f"Simulating a lost link to Central for {seconds:g} s")
        self._pause_until = self._now() + seconds
        self._drop(link, bye=False)

    def _drop(self, link: ClientLink, *, bye: bool) -> None:
        self._local_close = True
        if not bye:
            link.closed = True  # a lost link says no goodbye: close() then sends no BYE
        asyncio.create_task(link.close())  # noqa: RUF006 - the run loop sees the close

    def engine_changed(self, health: EngineHealth) -> None:
        """The engine's health changed: Central hears it at once."""
        if self._link is not None and not self._link.closed:
            with contextlib.suppress(ConnectionClosed):
                self._link.send(MessageType.ENGINE_STATUS, health.body())

    # ---------------------------------------------------------------- run
    async def run(self) -> None:
        while True:
            if not self._want:
                await self._sleep(None)
                continue
            pause = self._pause_until - self._now()
            if pause > 0:
                await self._sleep(pause)
                if self._pause_until and self._now() >= self._pause_until:
                    self._notify(Level.INFO, "Restoring the link to Central")
                continue
            self._pause_until = 0.0
            link = await self._authenticate()
            if link is None:
                continue
            await self._session(link)

    async def _authenticate(self) -> ClientLink | None:
        try:
            secret = self._secrets.read()
        except SecretMissing as exc:
            self._notify(Level.BAD, str(exc))
            self._want = False
            return None
        try:
            link = await self._connect(Role.MONITOR, CONNECT_TIMEOUT, secret=secret)
        except AuthenticationThrottled as exc:
            # Central did not look at our secret: anyone may have failed logins as this
            # CP, so saying "wrong secret" (or giving up) would be false. Wait it out.
            self._notify(
                Level.WARN,
                f"Central is delaying logins for {self._cp_id} after failed attempts "
                f"(not necessarily yours); retrying in {exc.retry_after} s",
            )
            await self._sleep(exc.retry_after)
            return None
        except WeakChallenge as exc:  # not the secret's fault: keep it, try again later
            delay = self._backoff.next() * 4
            self._notify(Level.BAD, f"{exc}; retrying in {delay:g} s")
            await self._sleep(delay)
            return None
        except AuthenticationFailed:
            self._notify(
                Level.BAD,
                f"Central refused {self._cp_id}'s credentials: the secret in "
                f"{self._secrets.path} is wrong or the CP is not registered. Register first "
                "(menu r)",
            )
            if self.auto:
                await self._sleep(self._backoff.next() * 4)
            else:
                self._want = False
            return None
        if link is not None:
            self._backoff.reset()
        return link

    def _retry_delay(self, exc: CentralUnreachable) -> float:
        # A Central that names an owner it cannot reach names one that just failed:
        # its CPs are free within the lease (3 s), so try again at a steady pace.
        if isinstance(exc, OwnerUnreachable):
            return OWNER_RETRY + random.random() / 2
        return self._backoff.next()

    async def _session(self, link: ClientLink) -> None:
        self._link, self._local_close = link, False
        self._notify(Level.GOOD, f"Authenticated with Central at {self._addr}")
        self._on_key(link.session_key)
        beat = asyncio.create_task(self._heartbeat(link))
        revoked = False
        try:
            revoked = await self._listen(link)
        finally:
            beat.cancel()
            self._link = None
            self.state = None
            await link.close()
        if revoked:
            self._on_key(None)
            if self.auto:
                self._notify(Level.INFO, "Re-authenticating with Central")
                await self._sleep(0.5)
            else:
                self._want = False
                self._notify(Level.WARN, "Press e to re-authenticate with Central")
        elif not self._local_close:
            self._notify(Level.WARN, LOST)

    async def _heartbeat(self, link: ClientLink) -> None:
        with contextlib.suppress(ConnectionClosed):
            while not link.closed:
                body: dict[str, object] = {"engine_ok": self._tracker.ok}
                if not self._tracker.ok:
                    body["reason"] = self._tracker.reason
                link.send(MessageType.HEARTBEAT, body)
                self._retimed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._retimed.wait(), self.heartbeat_interval)

    def _retime(self, interval: object) -> None:
        """Beat as often as Central asks (its setting is the fleet's), within bounds."""
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            return
        low, high = HEARTBEAT_BOUNDS
        interval = min(max(float(interval), low), high)
        if interval != self.heartbeat_interval:
            self.heartbeat_interval = interval
            self._retimed.set()

    async def _listen(self, link: ClientLink) -> bool:
        """Show what Central says until the link ends; True if our key was revoked."""
        revoked = await self._serve(link, self._show)
        if revoked is None:
            return False
        self._notify(
            Level.BAD, f"Key revoked by Central: {revoked.body.get('reason') or 'revoked'}"
        )
        return True

    def _show(self, msg: Message) -> None:
        body = msg.body
        if msg.type is MessageType.STATUS:
            if "heartbeat_interval" in body:
                self._retime(body["heartbeat_interval"])
            state = str(body.get("state"))
            if state == self.state:
                return  # Central confirms the state on authentication too
            self.state = state
            reason = body.get("reason")
            tail = f" ({reason})" if reason else ""
            self._notify(_STATE_LEVEL.get(state, Level.INFO), f"State: {state}{tail}")
        elif msg.type is MessageType.ERROR:
            self._notify(Level.WARN, f"Central: {body.get('reason')}")
