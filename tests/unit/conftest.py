"""The unit tier's rule, enforced: a unit test starts no process (docs/architecture.md).

Anything that needs a real service, a child process or PostgreSQL belongs in
``tests/integration``; here a call to start one fails the test and says where it goes.
"""

from __future__ import annotations

import subprocess
from typing import Any, NoReturn

import pytest


@pytest.fixture(autouse=True)
def _no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(
            f"a unit test started a process ({args[0] if args else kwargs.get('args')!r}); "
            "tests that need one go in tests/integration"
        )

    monkeypatch.setattr(subprocess, "Popen", refuse)
