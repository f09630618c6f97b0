"""The driver's connection to Central: connect with bounded retries, ask, reconnect.

This is the asyncio edge; what to make of the messages is in ``driver.charge``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Protocol

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
)

from common.backoff import backoff_delay
from common.client import (
    AuthenticationFailed,
    AuthenticationThrottled,
    CentralUnreachable,
    ClientLink,
    WeakChallenge,
    connect,
)
from common.client import ConnectionClosed as ConnectionClosed
from common.config import Centrals, HostPort
from common.protocol.handshake import Role
from common.protocol.messages import Message, MessageType
from driver.errors import CentralDown, GaveUp, NotAuthenticated

__all__ = ["CentralLink", "ConnectionClosed", "Connector", "Link"]

ANSWER_TIMEOUT = 30.0  # Central answers queries at once; this only catches a wedged peer


class Connector(Protocol):
    def __call__(
        self, addr: HostPort | Centrals, role: Role, principal_id: str, *, secret: str | None = ...
    ) -> Awaitable[ClientLink]: ...


class Link(Protocol):
    """What the commands need of a connection to Central (a fake in unit tests)."""

    async def open(self) -> None: ...

    async def reconnect(self) -> None: ...

    def send(self, msg_type: MessageType, body: Mapping[str, Any] | None = None) -> None: ...

    async def recv(self, timeout: float | None = None) -> Message: ...

    async def ask(
        self,
        msg_type: MessageType,
        body: Mapping[str, Any] | None,
        answers: Collection[MessageType],
        *,
        on_other: Callable[[Message], None] | None = None,
        timeout: float = ANSWER_TIMEOUT,
    ) -> Message: ...

    async def close(self) -> None: ...


class CentralLink:
    """One authenticated connection to Central at a time, re-opened when it breaks.

    Args:
        addr: Central's ``HOST:PORT``.
        driver_id, secret: this driver's credentials.
        retry_for: seconds to keep trying to reach Central (0: one attempt).
        notify: called with a line for the user before each retry.
        connector: ``common.client.connect`` (a fake in tests).
    """

    def __init__(
        self,
        addr: HostPort | Centrals,
        driver_id: str,
        secret: str,
        *,
        retry_for: float,
        notify: Callable[[str], None],
        connector: Connector = connect,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.addr = addr
        self.driver_id = driver_id
        self._secret = secret
        self.retry_for = retry_for
        self._notify = notify
        self._connector = connector
        self._sleep = sleep
        self._link: ClientLink | None = None

    async def open(self) -> None:
        """Connect and authenticate, retrying with back-off for up to ``retry_for`` s.

        Raises:
            CentralDown: still unreachable when the time was up.
            NotAuthenticated: Central refused the id or secret, or is delaying logins for
                this id after failed attempts (never retried).
        """
        retrying = AsyncRetrying(
            stop=stop_after_delay(self.retry_for) if self.retry_for > 0 else stop_after_attempt(1),
            wait=self._wait,
            retry=retry_if_exception_type(CentralUnreachable),
            before_sleep=self._before_sleep,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    self._link = await self._connector(
                        self.addr, Role.DRIVER, self.driver_id, secret=self._secret
                    )
        except CentralUnreachable as exc:
            tried = f"; gave up after {self.retry_for:g} s" if self.retry_for > 0 else ""
            raise CentralDown(f"{exc}{tried}") from None
        except AuthenticationThrottled as exc:
            # Not a verdict on the secret: someone failed logins as this driver (or from
            # this address). Said apart so the user waits instead of doubting the secret.
            raise NotAuthenticated(
                f"Central is delaying logins for {self.driver_id} after failed attempts; "
                f"try again in {exc.retry_after} s"
            ) from None
        except WeakChallenge as exc:
            raise NotAuthenticated(str(exc)) from None
        except AuthenticationFailed:
            raise NotAuthenticated(
                f"Central refused driver {self.driver_id}: wrong secret, or no such driver"
            ) from None

    def _wait(self, state: RetryCallState) -> float:
        # Exponential back-off (0.5 s, 1 s, 2 s ... up to 5 s) with a little jitter, never
        # past the budget. Not tenacity's own jitter wait: its signature changed between
        # the versions we accept.
        backoff = backoff_delay(state.attempt_number, first=0.5, cap=5.0, jitter=0.25)
        left = self.retry_for - (state.seconds_since_start or 0.0)
        return max(0.0, min(backoff, left))

    def _before_sleep(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        self._notify(f"{error}; retrying in {wait:.1f} s")

    async def reconnect(self) -> None:
        await self.close()
        await self.open()

    @property
    def link(self) -> ClientLink:
        if self._link is None:
            raise ConnectionClosed("not connected to Central")
        return self._link

    def send(self, msg_type: MessageType, body: Mapping[str, Any] | None = None) -> None:
        self.link.send(msg_type, body or {})

    async def recv(self, timeout: float | None = None) -> Message:
        """The next message. Raises ConnectionClosed, or TimeoutError after ``timeout``."""
        return await self.link.recv(timeout)

    async def ask(
        self,
        msg_type: MessageType,
        body: Mapping[str, Any] | None,
        answers: Collection[MessageType],
        *,
        on_other: Callable[[Message], None] | None = None,
        timeout: float = ANSWER_TIMEOUT,
    ) -> Message:
        """Send a query and wait for its answer; other messages go to ``on_other``.

        Raises:
            ConnectionClosed: Central closed the connection first.
            GaveUp: no answer within ``timeout``.
        """
        self.send(msg_type, body)
        while True:
            try:
                msg = await self.recv(timeout)
            except TimeoutError:
                raise GaveUp(f"Central did not answer {msg_type} within {timeout:g} s") from None
            if msg.type in answers:
                return msg
            if on_other is not None:
                on_other(msg)

    async def close(self) -> None:
        if self._link is not None:
            with contextlib.suppress(Exception):
                await self.link.close()
            self._link = None
