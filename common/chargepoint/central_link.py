"""What the engine's and the monitor's links to Central share.

Both keep one link to Central and retry for ever: the engine with the session key its
monitor hands over (``cp_engine.central_link``), the monitor with the CP's secret
(``cp_monitor.central_link``). This base holds the link, a wait that a command or a new
key cuts short, the retry of an unreachable Central with back-off, and the reading of
Central's messages until the link closes or Central revokes the key. What each does
with a refusal or a message is its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from common.backoff import Backoff
from common.chargepoint.terminal import Level
from common.client import CentralUnreachable, ClientLink, ConnectionClosed, connect
from common.config import Centrals, HostPort
from common.protocol.handshake import Role
from common.protocol.messages import Message, MessageType

__all__ = ["LOST", "CentralLinkBase"]

LOST = "Lost the connection to Central; reconnecting"


class CentralLinkBase:
    """One link to Central, reconnected by a subclass's run loop.

    Args:
        addr: Central's address (or every Central's).
        cp_id: this charge point.
        notify: shows a line to the user.
        backoff: the waits between attempts while Central is unreachable.
    """

    def __init__(
        self,
        addr: HostPort | Centrals,
        cp_id: str,
        notify: Callable[[Level, str], None],
        backoff: Backoff,
    ) -> None:
        self._addr = addr
        self._cp_id = cp_id
        self._notify = notify
        self._backoff = backoff
        self._link: ClientLink | None = None
        self._wake = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._link is not None and not self._link.closed

    async def _sleep(self, seconds: float | None) -> None:
        """Wait ``seconds`` (None: until woken), or less if ``_wake`` is set meanwhile."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _retry_delay(self, exc: CentralUnreachable) -> float:
        """How long to wait after ``exc`` before the next attempt."""
        return self._backoff.next()

    async def _connect(self, role: Role, timeout: float, **credentials: Any) -> ClientLink | None:
        """A new authenticated link; None once an unreachable Central's wait is over.

        Raises:
            AuthenticationFailed: Central refused (the subclass decides what next).
        """
        try:
            return await connect(self._addr, role, self._cp_id, timeout=timeout, **credentials)
        except CentralUnreachable as exc:
            delay = self._retry_delay(exc)
            self._notify(Level.WARN, f"{exc}; retrying in {delay:g} s")
            await self._sleep(delay)
            return None

    @staticmethod
    async def _serve(link: ClientLink, on_message: Callable[[Message], None]) -> Message | None:
        """Hand Central's messages to ``on_message`` until the link closes (None) or
        Central revokes the key (its ``key_revoked`` message, not handed on)."""
        while True:
            try:
                msg = await link.recv()
            except ConnectionClosed:
                return None
            if msg.type is MessageType.KEY_REVOKED:
                return msg
            on_message(msg)
