"""``ev-registry`` configuration: flag > environment > default, secrets from env or file."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from common.config import HostPort
from common.errors import ConfigError
from registry.settings import parse_settings

ENV = {"EV_PROVISIONING_TOKEN": "prov-token"}


def test_defaults(tmp_path: Path) -> None:
    s = parse_settings(["--data-dir", str(tmp_path)], ENV)
    assert s.listen == HostPort("0.0.0.0", 8443)
    assert s.default_price == Decimal("0.30")
    assert s.scrypt.n == 2**14
    assert (s.max_failures_per_id, s.max_failures_per_ip, s.failure_window) == (5, 20, 60.0)
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'evcharging.db'}"
    assert s.operator_token is None and s.tls_cert is None and s.tls_san == ()
    assert s.kafka_bootstrap is None
    assert (s.threads, s.concurrency_per_ip, s.head_timeout) == (16, 4, 10.0)
    assert parse_settings([], {**ENV, "EV_KAFKA_BOOTSTRAP": "k:9092"}).kafka_bootstrap == "k:9092"


def test_flag_beats_environment_beats_default() -> None:
    env = {**ENV, "EV_REGISTRY_LISTEN": "127.0.0.1:9000", "EV_DEFAULT_PRICE": "0.41"}
    assert parse_settings([], env).listen == HostPort("127.0.0.1", 9000)
    s = parse_settings(["--listen", "[::1]:0", "--default-price", "0.5"], env)
    assert s.listen == HostPort("::1", 0) and s.default_price == Decimal("0.5")


def test_slow_client_limits_from_flags_or_environment() -> None:
    env = {**ENV, "EV_REGISTRY_CONCURRENCY_PER_IP": "2", "EV_REGISTRY_HEAD_TIMEOUT": "2.5"}
    s = parse_settings([], env)
    assert (s.concurrency_per_ip, s.head_timeout) == (2, 2.5)
    assert parse_settings(["--concurrency-per-ip", "8"], env).concurrency_per_ip == 8


def test_tokens_from_files_and_kept_out_of_repr(tmp_path: Path) -> None:
    (tmp_path / "prov").write_text("from-a-file\n")
    (tmp_path / "op").write_text("operator-secret")
    env = {
        "EV_PROVISIONING_TOKEN_FILE": str(tmp_path / "prov"),
        "EV_OPERATOR_TOKEN_FILE": str(tmp_path / "op"),
    }
    s = parse_settings([], env)
    assert (s.provisioning_token, s.operator_token) == ("from-a-file", "operator-secret")
    assert "from-a-file" not in repr(s) and "operator-secret" not in repr(s)


def test_database_url_and_san_and_scrypt() -> None:
    env = {**ENV, "EV_DATABASE_URL": "postgresql+psycopg2://u@h/db", "EV_SCRYPT_N": "16"}
    s = parse_settings(["--tls-san", "registry.lan,192.168.1.5"], env)
    assert s.database_url == "postgresql+psycopg2://u@h/db"
    assert s.tls_san == ("registry.lan", "192.168.1.5") and s.scrypt.n == 16


@pytest.mark.parametrize(
    ("argv", "env", "setting"),
    [
        ([], {}, "EV_PROVISIONING_TOKEN"),
        ([], {"EV_PROVISIONING_TOKEN_FILE": "/nonexistent/token"}, "EV_PROVISIONING_TOKEN_FILE"),
        (["--listen", "8443"], ENV, "--listen"),
        (["--listen", "localhost:99999"], ENV, "--listen"),
        ([], {**ENV, "EV_REGISTRY_LISTEN": "nope"}, "EV_REGISTRY_LISTEN"),
        (["--tls-cert", "/x.pem"], ENV, "--tls-cert/--tls-key"),
        (["--default-price", "-1"], ENV, "--default-price"),
        (["--scrypt-n", "1000"], ENV, "--scrypt-n"),
        (["--max-failures-per-id", "0"], ENV, "--max-failures-per-id"),
        (["--failure-window", "0"], ENV, "--failure-window"),
        (["--concurrency-per-ip", "0"], ENV, "--concurrency-per-ip"),
        ([], {**ENV, "EV_REGISTRY_HEAD_TIMEOUT": "soon"}, "EV_REGISTRY_HEAD_TIMEOUT"),
        (["--tls-san", "not a host"], ENV, "--tls-san"),
        (["--log-level", "LOUD"], ENV, "--log-level"),
        (["--no-such-flag"], ENV, "ev-registry"),
    ],
)
def test_bad_settings_name_what_to_fix(argv: list[str], env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(argv, env)
    assert caught.value.setting == setting
    assert "\n" not in str(caught.value)
