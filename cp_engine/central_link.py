"""The engine's link to Central: authenticate with the key the monitor handed over.

Reconnects with back-off while Central is unreachable; when Central refuses the key
(revoked, or Central restarted and forgot it) it waits for a new key from the monitor.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from common.backoff import Backoff
from common.chargepoint.central_link import LOST, CentralLinkBase
from common.chargepoint.terminal import Level
from common.client import AuthenticationFailed, ConnectionClosed
from common.config import Centrals, HostPort
from common.protocol.handshake import Role
from common.protocol.messages import Message, MessageType

__all__ = ["CentralConnector"]

CONNECT_TIMEOUT = 5.0


class CentralConnector(CentralLinkBase):
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
        super().__init__(addr, cp_id, notify, backoff or Backoff(0.5, 5.0))
        self._on_message = on_message
        self._on_connected = on_connected
        self._key: bytes | None = None

    def set_key(self, key: bytes) -> bool:
        """A session key from the monitor; True if it is a new one."""
        if key == self._key:
            return False
        self._key = key
        self._wake.set()
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

    async def run(self) -> None:
        if self._key is None:
            self._notify(Level.INFO, "Waiting for the session key from the monitor")
        while True:
            key = self._key
            if key is None:
                await self._sleep(None)
                continue
            try:
                link = await self._connect(Role.ENGINE, CONNECT_TIMEOUT, session_key=key)
            except AuthenticationFailed:
                if self._key == key:
                    self._key = None
                self._notify(
                    Level.WARN,
                    "Central refused the session key; waiting for a new one from the monitor",
                )
                continue
            if link is None:
                continue
            self._backoff.reset()
            self._link = link
            self._notify(Level.GOOD, f"Connected to Central at {self._addr}")
            self._on_connected()
            revoked = await self._serve(link, self._on_message)
            if revoked is not None:
                self._revoked(key, revoked)
            self._link = None
            await link.close()
            if revoked is None:
                self._notify(Level.WARN, LOST)

    def _revoked(self, key: bytes, msg: Message) -> None:
        if self._key == key:
            self._key = None
        reason = msg.body.get("reason") or "revoked"
        self._notify(
            Level.BAD,
            f"Key revoked by Central ({reason}); waiting for the monitor to re-authenticate",
        )

    async def close(self) -> None:
        if self._link is not None:
            await self._link.close()
            self._link = None
