"""Fixtures for integration tests: a running Central."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.central import CentralProcess, start_central


@pytest.fixture
def central(
    tmp_path: Path, sqlite_url: str, free_port: Callable[[], int]
) -> Iterator[CentralProcess]:
    """Central as a real process on free ports, with a SQLite database."""
    proc = start_central(tmp_path, sqlite_url, free_port(), free_port())
    yield proc
    proc.proc.stop()
