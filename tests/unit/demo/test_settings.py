"""The demo's settings: ports given or taken, tokens fresh unless given."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.errors import ConfigError
from demo.settings import DEFAULT_PORTS, resolve_settings


def _namespace(**ports: int | None) -> argparse.Namespace:
    values = {f"{name}_port": ports.get(name) for name in DEFAULT_PORTS}
    return argparse.Namespace(cps=1, drivers=1, duration=None, data_dir=None, **values)


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_taken_port_given_by_flag_is_an_error(listener: int, tmp_path: Path) -> None:
    args = _namespace(web=listener)
    with pytest.raises(ConfigError, match=f"--web-port: port {listener} is already in use"):
        resolve_settings(args, env={})


def test_a_taken_default_port_falls_back_with_a_note(
    listener: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(DEFAULT_PORTS, "web", listener)
    monkeypatch.setitem(DEFAULT_PORTS, "api", listener)
    settings = resolve_settings(_namespace(), env={})
    assert settings.ports.web == 0 and settings.ports.api == 0
    assert any(f"port {listener} (web dashboard) is taken" in n for n in settings.notes)
    assert settings.data_dir.is_dir() and settings.data_dir_is_temp
    settings.data_dir.rmdir()


def test_tokens_are_fresh_unless_given(tmp_path: Path) -> None:
    first = resolve_settings(_namespace(**dict.fromkeys(DEFAULT_PORTS, 0)), env={})
    second = resolve_settings(
        _namespace(**dict.fromkeys(DEFAULT_PORTS, 0)),
        env={"EV_OPERATOR_TOKEN": "op-token-from-env"},
    )
    assert first.operator_token != second.operator_token != first.provisioning_token
    assert second.operator_token == "op-token-from-env"
    for settings in (first, second):
        settings.data_dir.rmdir()
