"""Fixtures for the protocol unit tests: a fake clock, cheap scrypt, event draining."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from common.protocol.framing import NEED_DATA
from common.protocol.keys import ScryptParams
from tests.support.clock import FakeClock
from tests.support.scrypt import CHEAP_SCRYPT


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)  # a real-looking time: Fernet tokens carry it


@pytest.fixture
def fast_params() -> ScryptParams:
    return CHEAP_SCRYPT


def _drain(source: Any) -> list[Any]:
    """Pull events until NEED_DATA, keeping raised ProtocolErrors in the list."""
    from common.protocol.errors import ProtocolError

    events: list[Any] = []
    for _ in range(100_000):
        try:
            event = source.next_event()
        except ProtocolError as exc:
            events.append(exc)
            continue
        if event is NEED_DATA:
            return events
        events.append(event)
    raise AssertionError("decoder does not converge")


@pytest.fixture
def drain() -> Callable[[Any], list[Any]]:
    return _drain
