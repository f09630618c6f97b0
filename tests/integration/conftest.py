"""Fixtures for integration tests: a running Central, fresh per test or shared by a module."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.tcp import free_port as _free_port
from tests.support.central import CentralProcess, start_central


@pytest.fixture
def central(
    tmp_path: Path, sqlite_url: str, free_port: Callable[[], int]
) -> Iterator[CentralProcess]:
    """Central as a real process on free ports, with a SQLite database."""
    proc = start_central(tmp_path, sqlite_url, free_port(), free_port())
    yield proc
    proc.proc.stop()


@pytest.fixture(scope="module")
def shared_central(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CentralProcess]:
    """One Central for every test of a module that asks for it, with a SQLite database.

    Only for tests that act on CPs and drivers of their own (ids no other test of the
    module uses) and assert nothing about the whole network (every CP, session, alert or
    audit entry) nor about Central's process-wide state (login throttling by address, a
    restart). Anything else takes ``central``, a process of its own.
    """
    root = tmp_path_factory.mktemp("shared-central")
    proc = start_central(root, f"sqlite:///{root / 'evcharging.db'}", _free_port(), _free_port())
    yield proc
    proc.proc.stop()
