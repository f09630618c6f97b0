"""Secrets from ``NAME`` or ``NAME_FILE``: required ones are a one-line ConfigError when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import read_secret, require_secret
from common.errors import ConfigError


def test_from_the_variable_or_the_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-a-file\n")
    assert require_secret("EV_T", {"EV_T": "direct"}) == "direct"
    assert require_secret("EV_T", {"EV_T_FILE": str(tmp_path / "token")}) == "from-a-file"
    assert read_secret("EV_T", {"EV_T": "direct"}) == "direct"


@pytest.mark.parametrize("env", [{}, {"EV_T": ""}])
def test_missing(env: dict[str, str], tmp_path: Path) -> None:
    assert read_secret("EV_T", env) is None
    with pytest.raises(ConfigError) as caught:
        require_secret("EV_T", env)
    assert str(caught.value) == "EV_T: not set (set EV_T or EV_T_FILE)"


def test_an_unreadable_file_names_the_file_variable(tmp_path: Path) -> None:
    env = {"EV_T_FILE": str(tmp_path / "absent")}
    for read in (require_secret, read_secret):
        with pytest.raises(ConfigError) as caught:
            read("EV_T", env)
        assert str(caught.value).startswith("EV_T_FILE: cannot read ")
