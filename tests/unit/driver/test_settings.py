"""``ev-driver`` settings: id, Central, the secret and the command; one-line errors (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import Centrals, HostPort
from common.errors import ConfigError
from driver.__main__ import main
from driver.settings import History, ListCps, Request, RunFile, Status, parse_settings

ENV = {"EV_DRIVER_ID": "D1", "EV_CENTRAL_ADDR": "127.0.0.1:7000", "EV_DRIVER_SECRET": "s3cret"}


def test_each_command_is_typed() -> None:
    s = parse_settings(["request", "CP1", "--kwh", "7.5"], ENV)
    assert s.command == Request("CP1", 7.5)
    assert s.driver_id == "D1" and s.central == Centrals((HostPort("127.0.0.1", 7000),))
    assert (s.tty, s.retry_for, s.plug_wait) == (True, 30.0, 600.0)
    assert "s3cret" not in repr(s)
    assert parse_settings(["--no-tty", "list"], ENV).tty is False
    assert parse_settings(["list"], ENV).command == ListCps()
    assert parse_settings(["history"], ENV).command == History()
    assert parse_settings(["status", "--follow"], ENV).command == Status(True)
    assert parse_settings(["request", "CP1"], ENV).command == Request("CP1", None)


def test_run_reads_its_service_file_up_front(tmp_path: Path) -> None:
    path = tmp_path / "services.txt"
    path.write_text("CP1 5\nCP2\n", encoding="utf-8")
    command = parse_settings(["run", str(path), "--pause", "0"], ENV).command
    assert isinstance(command, RunFile) and (command.path, command.pause) == (path, 0.0)
    assert [s.cp_id for s in command.services.services] == ["CP1", "CP2"]


def test_the_secret_file_beats_the_environment(tmp_path: Path) -> None:
    (tmp_path / "d1.secret").write_text("from-the-file\n")
    argv = ["--secret-file", str(tmp_path / "d1.secret"), "list"]
    assert parse_settings(argv, ENV).secret == "from-the-file"


@pytest.mark.parametrize(
    ("argv", "env", "where"),
    [
        (["list"], {**ENV, "EV_DRIVER_ID": ""}, "--id"),
        (["--id", "not an id!", "list"], ENV, "--id"),
        (["list"], {**ENV, "EV_CENTRAL_ADDR": ""}, "--central"),
        (["list"], {**ENV, "EV_DRIVER_SECRET": ""}, "EV_DRIVER_SECRET"),
        (["--secret-file", "/nonexistent/d1.secret", "list"], ENV, "--secret-file"),
        (["run", "/nonexistent/services.txt"], ENV, "/nonexistent/services.txt"),
        (["list"], {**ENV, "EV_DRIVER_RETRY_FOR": "-1"}, "EV_DRIVER_RETRY_FOR"),
    ],
)
def test_bad_settings_are_one_config_error(
    argv: list[str], env: dict[str, str], where: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(argv, env)
    assert str(caught.value).startswith(f"{where}: ")


def test_a_missing_secret_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"], {**ENV, "EV_DRIVER_SECRET": ""}) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "ev-driver: error: EV_DRIVER_SECRET: not set "
        "(set EV_DRIVER_SECRET or EV_DRIVER_SECRET_FILE)"
    ]
