"""The engine's link to Central: authenticate with the key the monitor handed over.

Reconnects with back-off while Central is unreachable; when Central refuses the key
(revoked, or Central restarted and forgot it) it waits for a new key from the monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from common.backoff import Backoff
from common.client import (
    AuthenticationFailed,
    CentralUnreachable,
    ClientLink,
    ConnectionClosed,
    connect,
)
from common.config import Centrals, HostPort
from common.protocol.handshake import Role
from common.protocol.messages import Message, MessageType
from cp_engine.terminal import Level

__all__ = ["CentralConnector"]

CONNECT_TIMEOUT = 5.0


class CentralConnector:
    """Keeps one engine link to Central while a session key is known.

    Args:
        addr: Central's address.
        cp_id: this charge point.
        on_message: every message from Central except ``key_revoked``.
        on_connected: called right after each successful connection.
        notify: shows a line to the user.
    """

    def __init__(
        self,
        addr: HostPort | Centrals,
        cp_id: str,
        on_message: Callable[[Message], None],
        on_connected: Callable[[], None],
        notify: Callable[[Level, str], None],
        backoff: Backoff | None = None,
    ) -> None:
        self._addr = addr
        self._cp_id = cp_id
        self._on_message = on_message
        self._on_connected = on_connected
        self._notify = notify
        self._backoff = backoff or Backoff(0.5, 5.0)
        self._key: bytes | None = None
        self._changed = asyncio.Event()
        self._link: ClientLink | None = None

    @property
    def connected(self) -> bool:
        return self._link is not None and not self._link.closed

    def set_key(self, key: bytes) -> bool:
        """A session key from the monitor; True if it is a new one."""
        if key == self._key:
            return False
        self._key = key
        self._changed.set()
        return True

    def send(self, msg_type: MessageType, body: Mapping[str, Any]) -> bool:
        """Send if connected; False otherwise (the caller keeps what matters)."""
        link = self._link
        if link is None or link.closed:
            return False
        try:
            link.send(msg_type, body)
        except ConnectionClosed:
            return False
        return True

    async def _wait_change(self, timeout: float | None) -> None:
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def run(self) -> None:
        if self._key is None:
            self._notify(Level.INFO, "Waiting for the session key from the monitor")
        while True:
            key = self._key
            if key is None:
                await self._wait_change(None)
                continue
            try:
                link = await connect(
                    self._addr, Role.ENGINE, self._cp_id, session_key=key, timeout=CONNECT_TIMEOUT
                )
            except CentralUnreachable as exc:
                delay = self._backoff.next()
                self._notify(Level.WARN, f"{exc}; retrying in {delay:g} s")
                await self._wait_change(delay)
                continue
            except AuthenticationFailed:
                if self._key == key:
                    self._key = None
                self._notify(
                    Level.WARN,
                    "Central refused the session key; waiting for a new one from the monitor",
                )
                continue
            self._backoff.reset()
            self._link = link
            self._notify(Level.GOOD, f"Connected to Central at {self._addr}")
            self._on_connected()
            revoked = await self._serve(link, key)
            self._link = None
            await link.close()
            if not revoked:
                self._notify(Level.WARN, "Lost the connection to Central; reconnecting")

    async def _serve(self, link: ClientLink, key: bytes) -> bool:
        """Dispatch messages until the link closes; True if the key was revoked."""
        while True:
            try:
                msg = await link.recv()
            except ConnectionClosed:
                return False
            if msg.type is MessageType.KEY_REVOKED:
                if self._key == key:
                    self._key = None
                reason = msg.body.get("reason") or "revoked"
                self._notify(
                    Level.BAD,
                    f"Key revoked by Central ({reason}); waiting for the monitor to "
                    "re-authenticate",
                )
                return True
            self._on_message(msg)

    async def close(self) -> None:
        if self._link is not None:
            await self._link.close()
            self._link = None
