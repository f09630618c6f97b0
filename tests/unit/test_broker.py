"""The embedded broker's checks that come before any process is started."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.infra import BrokerError, EmbeddedBroker


def test_missing_binary_is_one_clear_error(tmp_path: Path) -> None:
    broker = EmbeddedBroker(binary=tmp_path / "no-tansu-here")
    with pytest.raises(BrokerError, match=r"tansu binary not found or not executable: .*no-tansu"):
        broker.start()
