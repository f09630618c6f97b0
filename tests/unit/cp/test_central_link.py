"""The monitor's and the engine's links to Central against a fake ``connect``."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from common.backoff import Backoff
from common.chargepoint import central_link  # where the links call connect
from common.chargepoint.secret_file import SecretFile
from common.chargepoint.terminal import Level
from common.client import AuthenticationFailed, AuthenticationThrottled, CentralUnreachable
from common.config import HostPort
from common.protocol.handshake import Role
from common.protocol.messages import Message, MessageType
from cp_engine.central_link import CentralConnector
from cp_monitor.central_link import CentralSession
from cp_monitor.health import HealthTracker

ADDR = HostPort("127.0.0.1", 7000)


class Stop(Exception):
    """Ends the run loop once it has nothing left to do."""


def throttled(seconds: int) -> AuthenticationThrottled:
    return AuthenticationThrottled(
        f"Central is delaying logins for CP1 after failed attempts; retry in {seconds} s",
        retry_after=seconds,
    )


class FakeConnect:
    """``connect`` raising the scripted errors in order."""

    def __init__(self, errors: Iterable[Exception]) -> None:
        self.errors = deque(errors)
        self.calls: list[tuple[Any, ...]] = []
        self.called = asyncio.Event()

    async def __call__(self, addr: HostPort, role: Any, principal: str, **kw: Any) -> Any:
        self.calls.append((addr, role, principal))
        self.called.set()
        raise self.errors.popleft()


def session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeConnect, *, auto: bool
) -> tuple[CentralSession, list[tuple[Level, str]]]:
    secrets = SecretFile(tmp_path / "CP1.secret", "CP1")
    secrets.write("s3cret")
    notes: list[tuple[Level, str]] = []
    monkeypatch.setattr(central_link, "connect", fake)
    link = CentralSession(
        ADDR,
        "CP1",
        secrets,
        HealthTracker(),
        on_key=lambda _key: None,
        notify=lambda level, text: notes.append((level, text)),
        auto=auto,
    )
    return link, notes


@pytest.mark.parametrize("auto", [False, True])
def test_a_throttled_login_is_retried_after_the_delay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, auto: bool
) -> None:
    fake = FakeConnect([throttled(7), throttled(3), AuthenticationFailed("no")])
    link, notes = session(tmp_path, monkeypatch, fake, auto=auto)
    sleeps: list[float | None] = []

    async def fake_sleep(seconds: float | None) -> None:
        sleeps.append(seconds)
        if seconds is None or len(sleeps) == 3:  # idle, or the script is played out
            raise Stop

    monkeypatch.setattr(link, "_sleep", fake_sleep)
    link.authenticate()
    with pytest.raises(Stop):
        asyncio.run(link.run())
    assert len(fake.calls) == 3
    assert sleeps[:2] == [7, 3]
    assert notes[:2] == [
        (
            Level.WARN,
            "Central is delaying logins for CP1 after failed attempts (not necessarily "
            "yours); retrying in 7 s",
        ),
        (
            Level.WARN,
            "Central is delaying logins for CP1 after failed attempts (not necessarily "
            "yours); retrying in 3 s",
        ),
    ]
    assert not any("secret" in text for _, text in notes[:2])
    # Only a real refusal says the secret is wrong.
    assert notes[2][0] is Level.BAD and "secret" in notes[2][1]


def test_the_delay_is_cut_short_by_a_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        fake = FakeConnect([throttled(3600), AuthenticationFailed("no")])
        link, notes = session(tmp_path, monkeypatch, fake, auto=False)
        link.authenticate()
        task = asyncio.create_task(link.run())
        await asyncio.wait_for(fake.called.wait(), 5)
        fake.called.clear()
        for _ in range(5):
            await asyncio.sleep(0)  # let the run loop start its hour-long wait
        assert len(fake.calls) == 1 and notes[0][0] is Level.WARN
        link.reauthenticate()
        await asyncio.wait_for(fake.called.wait(), 5)  # not an hour
        assert len(fake.calls) == 2
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


class ScriptedLink:
    """A Central link that delivers ``inbox`` and records what the monitor sends."""

    def __init__(self, inbox: list[Message]) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        for msg in inbox:
            self.inbox.put_nowait(msg)
        self.sent: list[tuple[float, MessageType]] = []
        self.closed = False
        self.session_key = b"k" * 32

    def send(self, msg_type: MessageType, body: dict[str, Any]) -> None:
        self.sent.append((asyncio.get_running_loop().time(), msg_type))

    async def recv(self) -> Message:
        return await self.inbox.get()

    async def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("announced", "beats"), [(0.1, range(4, 12)), ("often", range(1, 2))])
def test_the_monitor_beats_as_often_as_central_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, announced: object, beats: range
) -> None:
    """Central's interval (its fleet-wide setting) replaces the monitor's own at once."""

    async def scenario() -> list[tuple[float, MessageType]]:
        link, _ = session(tmp_path, monkeypatch, FakeConnect([]), auto=False)
        assert link.heartbeat_interval == 5.0
        status = {"state": "ACTIVATED", "reason": "authenticated", "heartbeat_interval": announced}
        fake = ScriptedLink([Message(MessageType.STATUS, 1, 0.0, status)])
        task = asyncio.create_task(link._session(fake))  # type: ignore[arg-type]
        await asyncio.sleep(0.55)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return [s for s in fake.sent if s[1] is MessageType.HEARTBEAT]

    sent = asyncio.run(scenario())
    assert len(sent) in beats  # 0.1 s: about six in 0.55 s; a bad value: the 5 s stays


def test_the_engine_retries_an_unreachable_central_and_waits_for_a_key_after_a_refusal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The engine's link shares the monitor's retry: back-off, a wait a new key cuts short."""

    async def scenario() -> tuple[FakeConnect, list[tuple[Level, str]], bool]:
        fake = FakeConnect(
            [CentralUnreachable("Cannot reach Central at 127.0.0.1:7000: refused")]
            + [AuthenticationFailed("no")] * 2
        )
        monkeypatch.setattr(central_link, "connect", fake)
        notes: list[tuple[Level, str]] = []
        engine = CentralConnector(
            ADDR,
            "CP1",
            on_message=lambda _msg: None,
            on_connected=lambda: None,
            notify=lambda level, text: notes.append((level, text)),
            backoff=Backoff(0.01, 0.01),
        )
        engine.set_key(b"k" * 32)
        task = asyncio.create_task(engine.run())
        while len(fake.calls) < 2:
            await asyncio.wait_for(fake.called.wait(), 5)
            fake.called.clear()
        for _ in range(5):
            await asyncio.sleep(0)  # the refused key is dropped: nothing until a new one
        waited = len(fake.calls) == 2
        assert engine.set_key(b"k" * 32)  # the same key again is news after a refusal
        await asyncio.wait_for(fake.called.wait(), 5)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return fake, notes, waited

    fake, notes, waited = asyncio.run(scenario())
    assert waited and len(fake.calls) == 3
    assert {call[1:] for call in fake.calls} == {(Role.ENGINE, "CP1")}
    refused = "Central refused the session key; waiting for a new one from the monitor"
    assert notes[:3] == [
        (Level.WARN, "Cannot reach Central at 127.0.0.1:7000: refused; retrying in 0.01 s"),
        (Level.WARN, refused),
        (Level.WARN, refused),
    ]
