"""``ev-registry`` as a real process over HTTPS, on SQLite and PostgreSQL.

One registry process per database backend serves most tests of this module (each test
uses its own charge-point ids); tests that need a process of their own start one.
Clients always verify the generated CA; nothing here turns verification off.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from common.infra import EmbeddedBroker
from common.procs import ServiceProcess
from tests.support.broker import EventCollector, wait_until
from tests.support.databases import fresh_postgres_database
from tests.support.scrypt import CHEAP_SCRYPT, CHEAP_SCRYPT_ENV

pytestmark = pytest.mark.integration

PROV = "it-provisioning-token-0123456789"
OPER = "it-operator-token-9876543210"


def clean_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without any EV_* setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EV_")}
    return {**env, **extra}


@dataclass
class Registry:
    """A running registry and a client that trusts its CA."""

    process: ServiceProcess
    url: str
    ca: Path
    db_url: str
    data_dir: Path
    http: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        # Per request: a Session's own ``verify`` loses to REQUESTS_CA_BUNDLE (requests#3829).
        kw.setdefault("verify", str(self.ca))
        return self.http.request(method, self.url + path, headers=headers, timeout=10, **kw)

    def register(self, cp_id: str, **extra: Any) -> Any:
        body = {"id": cp_id, "location": "Madrid", **extra}
        return self.call("POST", "/api/chargepoints", PROV, json=body)

    def verify(self, cp_id: str, secret: str) -> Any:
        return self.call("POST", "/api/verify", json={"id": cp_id, "secret": secret})

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def start_registry(
    data_dir: Path,
    db_url: str,
    *extra_args: str,
    name: str = "registry",
    log_dir: Path | None = None,
) -> Registry:
    args = [
        sys.executable, "-m", "registry",
        "--listen", "127.0.0.1:0",
        "--data-dir", str(data_dir),
        "--database-url", db_url,
        *extra_args,
    ]  # fmt: skip
    env = clean_env(
        EV_PROVISIONING_TOKEN=PROV,
        EV_OPERATOR_TOKEN=OPER,
        **CHEAP_SCRYPT_ENV,
        PYTHONPATH=os.environ.get("PYTHONPATH", "."),
    )
    log_path = (log_dir or data_dir) / f"{name}.log"
    process = ServiceProcess(args, env, log_path, name).start()
    ready = process.wait_ready("registry", timeout=60)
    return Registry(process, ready["url"], Path(ready["ca"]), db_url, data_dir)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    data_dir = tmp_path_factory.mktemp(f"registry-{request.param}")
    with _database(request, data_dir) as db_url:
        # A high per-address limit: every test here comes from 127.0.0.1.
        reg = start_registry(data_dir, db_url, "--max-failures-per-ip", "1000")
        try:
            yield reg
        finally:
            code = reg.process.stop()
            if code != 0:
                print(reg.process.tail())
            assert code == 0, "the registry did not stop cleanly on SIGTERM"


@contextlib.contextmanager
def _database(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[str]:
    """A fresh database for the module: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{data_dir / 'evcharging.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_admin_url")) as url:
        yield url


def test_register_verify_deregister_reregister_rotate(registry: Registry) -> None:
    r = registry.register("IT-CP1", price="0.35")
    assert r.status_code == 201, r.text
    secret = r.json()["secret"]
    assert r.json()["price_eur_kwh"] == "0.35" and len(secret) >= 40

    again = registry.register("IT-CP1")
    assert (again.status_code, again.json()["error"]) == (409, "already_registered")

    assert registry.verify("IT-CP1", secret).json()["valid"] is True
    wrong = registry.verify("IT-CP1", secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_credentials"

    assert registry.call("DELETE", "/api/chargepoints/IT-CP1", secret).status_code == 204
    assert registry.verify("IT-CP1", secret).status_code == 401
    status = registry.call("GET", "/api/chargepoints/IT-CP1").json()
    assert status["status"] == "deregistered" and status["deregistered_at"]

    back = registry.register("IT-CP1")
    assert back.status_code == 201
    new_secret = back.json()["secret"]
    assert new_secret != secret
    assert registry.verify("IT-CP1", new_secret).status_code == 200
    assert registry.verify("IT-CP1", secret).status_code == 401

    rotated = registry.call("POST", "/api/chargepoints/IT-CP1/rotate", new_secret)
    assert rotated.status_code == 200
    assert registry.verify("IT-CP1", new_secret).status_code == 401
    assert registry.verify("IT-CP1", rotated.json()["secret"]).status_code == 200

    listed = registry.call("GET", "/api/chargepoints", OPER).json()["chargepoints"]
    assert {"id": "IT-CP1", "status": "registered"}.items() <= next(
        cp for cp in listed if cp["id"] == "IT-CP1"
    ).items()
    engine = sa.create_engine(registry.db_url)
    try:
        with engine.connect() as conn:
            n = conn.execute(
                sa.text("SELECT scrypt_n FROM credentials WHERE principal_id = 'IT-CP1'")
            ).scalar_one()
        assert n == CHEAP_SCRYPT.n  # the slow hash's cost is the one configured
    finally:
        engine.dispose()


def test_brute_force_is_locked_out_with_retry_after(registry: Registry) -> None:
    secret = registry.register("IT-CP2").json()["secret"]
    codes = [registry.verify("IT-CP2", f"guess-{n}").status_code for n in range(5)]
    assert codes == [401] * 5
    locked = registry.verify("IT-CP2", secret)
    assert locked.status_code == 429 and locked.json()["error"] == "too_many_failures"
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    # Rotating with the secret is an attempt on the same id: locked too.
    assert registry.call("POST", "/api/chargepoints/IT-CP2/rotate", secret).status_code == 429


def test_client_without_the_ca_is_refused(registry: Registry) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(registry.url + "/api/health", timeout=10)  # the default trust store
    other_ca = ssl.create_default_context()
    with (
        pytest.raises(ssl.SSLCertVerificationError),
        socket.create_connection(("127.0.0.1", registry.port), timeout=10) as raw,
        other_ca.wrap_socket(raw, server_hostname="localhost"),
    ):
        pass
    # ...and the server shrugs it off.
    assert registry.call("GET", "/api/health").json() == {"status": "ok"}


def test_plain_http_gets_a_json_400(registry: Registry) -> None:
    plain = registry.url.replace("https://", "http://")
    for method, body in (("GET", None), ("POST", b'{"id": "x"}'), ("DELETE", b"z" * 50_000)):
        r = requests.request(method, plain + "/api/chargepoints", data=body, timeout=10)
        assert r.status_code == 400
        assert r.headers["Content-Type"] == "application/json"
        assert r.json()["error"] == "https_required"


def test_bad_requests_get_the_right_status_and_json(registry: Registry) -> None:
    json_type = {"Content-Type": "application/json"}
    cases = [
        (registry.call("POST", "/api/chargepoints", PROV, data="{bad", headers=json_type),
         400, "malformed_json"),
        (registry.call("POST", "/api/chargepoints", PROV, data="id=x"),
         415, "unsupported_media_type"),
        (registry.call("POST", "/api/chargepoints", PROV, data=b"{" + b" " * 20_000 + b"}",
                       headers=json_type), 413, "payload_too_large"),
        (registry.call("POST", "/api/chargepoints", PROV, data=b" " * 300_000, headers=json_type),
         413, "payload_too_large"),
        (registry.call("POST", "/api/verify", data=iter([b'{"id": "IT-X",', b' "secret": 1}']),
                       headers=json_type), 400, "invalid_field"),  # chunked
        (registry.call("POST", "/api/chargepoints", PROV, json={"id": "bad id", "location": "x"}),
         400, "invalid_field"),
        (registry.call("GET", "/api/chargepoints/NO-SUCH-CP"), 404, "not_found"),
        (registry.call("DELETE", "/api/chargepoints/NO-SUCH-CP", OPER), 404, "not_found"),
        (registry.call("POST", "/api/chargepoints", "wrong", json={"id": "A", "location": "B"}),
         401, "invalid_token"),
        (registry.call("GET", "/api/chargepoints", PROV), 401, "invalid_token"),
        (registry.call("GET", "/api/chargepoints"), 401, "missing_token"),
        (registry.call("PATCH", "/api/chargepoints"), 405, "method_not_allowed"),
        (registry.call("GET", "/" + "x" * 70_000), 414, "request_uri_too_long"),
        (registry.call("GET", "/api/health", headers={"X-Big": "y" * 40_000}),
         413, "request_entity_too_large"),
        (registry.call("POST", "/api/chargepoints", PROV, data=b" " * 1_500_000,
                       headers=json_type), 413, "request_entity_too_large"),
    ]  # fmt: skip
    for response, status, code in cases:
        assert response.status_code == status, (status, response.text)
        assert response.headers["Content-Type"] == "application/json"
        assert response.json()["error"] == code
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "Traceback" not in registry.process.output()


def test_a_silent_client_does_not_stall_the_others(registry: Registry) -> None:
    silent = socket.create_connection(("127.0.0.1", registry.port))
    half_hello = socket.create_connection(("127.0.0.1", registry.port))
    half_hello.sendall(b"\x16\x03\x01\x02\x00\x01")
    try:
        started = time.monotonic()
        for _ in range(3):
            assert registry.call("GET", "/api/health").status_code == 200
        assert time.monotonic() - started < 3
    finally:
        silent.close()
        half_hello.close()


def test_the_secret_appears_nowhere(registry: Registry) -> None:
    secrets = [registry.register("IT-CP3").json()["secret"]]
    registry.verify("IT-CP3", secrets[0])
    registry.verify("IT-CP3", secrets[0] + "x")  # a failure: audited, must not leak either
    secrets.append(
        registry.call("POST", "/api/chargepoints/IT-CP3/rotate", secrets[0]).json()["secret"]
    )
    registry.call("DELETE", "/api/chargepoints/IT-CP3", secrets[1])
    secrets.append(registry.register("IT-CP3").json()["secret"])
    assert len(set(secrets)) == 3

    haystacks: dict[str, bytes] = {"log": registry.process.output().encode()}
    engine = sa.create_engine(registry.db_url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        assert {"charge_points", "credentials", "outbox", "audit_entries"} <= set(meta.tables)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                rows = conn.execute(sa.select(table)).all()
                haystacks[table.name] = b"\n".join(
                    v if isinstance(v, bytes) else str(v).encode() for row in rows for v in row
                )
            payloads = conn.execute(sa.text("SELECT payload FROM outbox")).scalars().all()
            params = conn.execute(sa.text("SELECT params FROM audit_entries")).scalars().all()
    finally:
        engine.dispose()
    types = [json.loads(p)["type"] for p in payloads]
    assert {"cp.registered", "cp.credential_rotated", "cp.deregistered"} <= set(types)
    assert "registry.verify_failed" in types and params
    if registry.db_url.startswith("sqlite"):
        for path in registry.data_dir.glob("evcharging.db*"):  # the file, -wal, -shm
            haystacks[path.name] = path.read_bytes()
    for secret in secrets:
        for name, haystack in haystacks.items():
            assert secret.encode() not in haystack, f"a secret leaked into {name}"
            assert secret[:20].encode() not in haystack, f"part of a secret leaked into {name}"


def test_restart_keeps_the_ca_and_the_credentials(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'evcharging.db'}"
    first = start_registry(tmp_path, db_url)
    ca_bytes = first.ca.read_bytes()
    secret = first.register("IT-CP4").json()["secret"]
    assert first.process.stop() == 0
    assert "registry stopped" in first.process.output()

    second = start_registry(tmp_path, db_url, "--tls-san", "registry.test,10.99.0.1", name="again")
    try:
        assert second.ca.read_bytes() == ca_bytes  # clients keep their pinned CA
        again = second.call(
            "POST", "/api/verify", json={"id": "IT-CP4", "secret": secret}, verify=str(first.ca)
        )
        assert again.status_code == 200
        served = ssl.get_server_certificate(("127.0.0.1", second.port))
        from cryptography import x509

        san = x509.load_pem_x509_certificate(served.encode()).extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
        assert "registry.test" in san.value.get_values_for_type(x509.DNSName)
    finally:
        assert second.process.stop() == 0


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_the_database_and_its_directory_are_private(tmp_path: Path) -> None:
    # The SQLite file holds verifiers (whose server_key lets a thief pose as Central):
    # under the usual umask 022 it used to be 0644 in a 0755 directory.
    data_dir = tmp_path / "fresh" / "data"
    db = data_dir / "evcharging.db"
    reg = start_registry(data_dir, f"sqlite:///{db}", log_dir=tmp_path)
    try:
        assert reg.register("IT-FILES").status_code == 201
        for directory in (tmp_path / "fresh", data_dir, data_dir / "registry-tls"):
            assert _mode(directory) == 0o700, directory
        wal, shm = db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")
        assert wal.exists() and shm.exists()  # the registry is running: WAL mode
        for file in (db, wal, shm):
            assert _mode(file) == 0o600, file
    finally:
        assert reg.process.stop() == 0

    # A database an older version left readable is tightened at the next start.
    db.chmod(0o644)
    again = start_registry(data_dir, f"sqlite:///{db}", log_dir=tmp_path, name="again")
    try:
        assert _mode(db) == 0o600
        assert again.register("IT-FILES2").status_code == 201
        assert "database file was readable by others" in again.process.output()
    finally:
        assert again.process.stop() == 0


def test_events_reach_kafka_when_a_broker_is_configured(
    tmp_path: Path, broker: EmbeddedBroker
) -> None:
    db_url = f"sqlite:///{tmp_path / 'evcharging.db'}"
    with EventCollector(broker.bootstrap) as collector:
        reg = start_registry(tmp_path, db_url, "--kafka-bootstrap", broker.bootstrap)
        try:
            secret = reg.register("IT-K1").json()["secret"]
            assert reg.verify("IT-K1", "wrong").status_code == 401
            assert reg.call("DELETE", "/api/chargepoints/IT-K1", secret).status_code == 204

            def mine() -> list[str]:
                return [str(e.type) for e in collector.events() if e.cp_id == "IT-K1"]

            wanted = ["cp.registered", "registry.verify_failed", "cp.deregistered"]
            wait_until(lambda: mine() == wanted, 30, lambda: f"{wanted}, got {mine()}")
        finally:
            assert reg.process.stop() == 0
    published = [e.to_json() for e in collector.events() if e.cp_id == "IT-K1"]
    assert all(secret not in text for text in published)
    assert all(e.source_ip == "127.0.0.1" for e in collector.events() if e.cp_id == "IT-K1")


def run_registry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "registry", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ([], {}, "ev-registry: error: EV_PROVISIONING_TOKEN: not set"),
        (["--listen", "nowhere"], {"EV_PROVISIONING_TOKEN": PROV}, "ev-registry: error: --listen:"),
        (["--default-price", "free"], {"EV_PROVISIONING_TOKEN": PROV},
         "ev-registry: error: --default-price:"),
        (["--tls-key", "/k.pem"], {"EV_PROVISIONING_TOKEN": PROV},
         "ev-registry: error: --tls-cert/--tls-key: give both"),
    ],
)  # fmt: skip
def test_bad_configuration_is_one_clear_line_and_exit_2(
    tmp_path: Path, args: list[str], env: dict[str, str], expected: str
) -> None:
    done = run_registry("--data-dir", str(tmp_path), *args, env=clean_env(**env))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(expected) and done.stderr.count("\n") == 1, done.stderr


def test_a_port_in_use_is_a_config_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_registry(
            "--data-dir", str(tmp_path), "--listen", f"127.0.0.1:{port}",
            env=clean_env(EV_PROVISIONING_TOKEN=PROV),
        )  # fmt: skip
    assert done.returncode == 2
    assert f"ev-registry: error: --listen: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_teaches() -> None:
    done = run_registry("--help", env=clean_env())
    assert done.returncode == 0
    for word in ("--listen", "EV_REGISTRY_LISTEN", "--tls-san", "--default-price",
                 "EV_PROVISIONING_TOKEN", "EV_OPERATOR_TOKEN", "ca.pem"):  # fmt: skip
        assert word in done.stdout, word
