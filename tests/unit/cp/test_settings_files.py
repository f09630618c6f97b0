"""Settings of both processes and the OCPP simulator, the pairing key, the secret file, the
Registry client."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

import pytest
import requests

from common.chargepoint.errors import PairingKeyError, RegistryError, SecretMissing
from common.chargepoint.pairing import load_pairing_key
from common.chargepoint.registry_client import RegistryClient
from common.chargepoint.secret_file import SecretFile
from common.config import HostPort
from common.errors import ConfigError
from cp_engine.settings import parse_settings as engine_settings
from cp_monitor.settings import parse_settings as monitor_settings
from ocpp_sim.settings import parse_settings as sim_settings


def test_engine_flags_over_environment_over_defaults(tmp_path: Path) -> None:
    env = {"EV_DATA_DIR": str(tmp_path), "EV_CP_SPEED": "10", "EV_CP_AUTO_PLUG": "yes"}
    s = engine_settings(["--id", "CP-1", "--speed", "60"], env)
    assert (s.cp_id, s.speed, s.auto_plug, s.kw, s.target_kwh) == ("CP-1", 60.0, True, 11.0, None)
    assert s.listen == HostPort("127.0.0.1", 7100)
    assert s.journal_file == tmp_path / "cp-CP-1" / "journal.json"
    assert s.pairing_key_file == tmp_path / "cp-CP-1" / "pairing.key"


@pytest.mark.parametrize(
    ("argv", "env", "setting"),
    [
        ([], {}, "--id"),
        (["--id", "a b"], {}, "--id"),
        (["--id", "CP1", "--kw", "0"], {}, "--kw"),
        (["--id", "CP1"], {"EV_CP_AUTO_PLUG": "perhaps"}, "EV_CP_AUTO_PLUG"),
        (["--id", "CP1", "--central", "nowhere"], {}, "--central"),
    ],
)
def test_engine_bad_settings(argv: list[str], env: dict[str, str], setting: str) -> None:
    with pytest.raises(ConfigError) as caught:
        engine_settings(argv, env)
    assert caught.value.setting == setting


def test_monitor_settings(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    env = {"EV_DATA_DIR": str(tmp_path), "EV_REGISTRY_CA": str(ca), "EV_CP_AUTO": "1"}
    s = monitor_settings(["--id", "CP1", "--location", "Oslo"], env)
    assert (s.auto, s.registry_ca, s.location) == (True, ca, "Oslo")
    assert s.secret_file == tmp_path / "cp-CP1" / "secret"
    with pytest.raises(ConfigError, match="https://"):
        monitor_settings(["--id", "CP1", "--registry", "http://r"], {})
    with pytest.raises(ConfigError, match="not a file"):
        monitor_settings(["--id", "CP1", "--registry-ca", str(tmp_path / "no.pem")], {})


def test_the_ocpp_simulator_reads_the_charge_point_options_the_same_way(tmp_path: Path) -> None:
    env = {"EV_DATA_DIR": str(tmp_path), "EV_CP_KW": "22", "EV_CP_LOCATION": "Oslo"}
    s = sim_settings(["--id", "CP9", "--speed", "60", "--url", "ws://c:9000/ocpp/"], env)
    assert (s.cp_id, s.kw, s.speed, s.location) == ("CP9", 22.0, 60.0, "Oslo")
    assert s.url == "ws://c:9000/ocpp" and s.registry == "https://127.0.0.1:8443"
    assert s.secret_file == tmp_path / "cp-CP9" / "secret"
    for parse in (sim_settings, engine_settings, monitor_settings):
        with pytest.raises(ConfigError) as caught:
            parse([], {})
        assert str(caught.value) == "--id: required: the charge point's id (or set EV_CP_ID)"
    with pytest.raises(ConfigError, match="ws://"):
        sim_settings(["--id", "CP9", "--url", "http://c:9000/ocpp"], {})


def test_pairing_key_is_made_once_and_private(tmp_path: Path) -> None:
    path = tmp_path / "site" / "pairing.key"
    key = load_pairing_key(path, {})
    assert len(key) >= 32 and load_pairing_key(path, {}) == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["pairing.key"]
    given = "k" * 40
    assert load_pairing_key(path, {"EV_CP_PAIRING_KEY": given}) == given.encode()
    with pytest.raises(PairingKeyError, match="at least 32"):
        load_pairing_key(path, {"EV_CP_PAIRING_KEY": "short"})
    path.write_text("short\n")
    with pytest.raises(PairingKeyError, match="delete the file"):
        load_pairing_key(path, {})


def test_secret_file(tmp_path: Path) -> None:
    secrets = SecretFile(tmp_path / "cp" / "secret", "CP1")
    with pytest.raises(SecretMissing, match=r"does not exist\. Register first"):
        secrets.read()
    secrets.write("s3cret")
    assert secrets.read() == "s3cret"
    assert stat.S_IMODE(secrets.path.stat().st_mode) == 0o600
    assert not secrets.loose_permissions()
    secrets.path.chmod(0o644)
    assert secrets.loose_permissions()
    secrets.path.write_text("\n")
    with pytest.raises(SecretMissing, match=r"empty\. Register first"):
        secrets.read()
    secrets.delete()
    secrets.delete()
    assert not secrets.exists()


class FakeResponse:
    def __init__(self, status: int, body: Any = None) -> None:
        self.status_code = status
        self.reason = "Reason"
        self._body = body

    def json(self) -> Any:
        if self._body is None:
            raise ValueError("no json")
        return self._body


@pytest.fixture
def answers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the fake Registry answers next (a response, or an exception to raise)."""
    queue: list[Any] = []
    calls: list[dict[str, Any]] = []

    def request(method: str, url: str, **kw: Any) -> Any:
        calls.append({"method": method, "url": url, **kw})
        item = queue.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item

    monkeypatch.setattr(requests, "request", request)
    queue.append(calls)  # the test pops this first to see the calls
    return queue


def test_registry_client_maps_answers_to_clear_errors(answers: list[Any], tmp_path: Path) -> None:
    calls = answers.pop(0)
    client = RegistryClient("https://reg:8443/", tmp_path / "ca.pem")
    answers.append(FakeResponse(201, {"id": "CP1", "secret": "abc"}))
    assert client.register("CP1", "Oslo", "tok") == "abc"
    assert calls[0]["url"] == "https://reg:8443/api/chargepoints"
    assert calls[0]["verify"] == str(tmp_path / "ca.pem")
    assert calls[0]["headers"] == {"Authorization": "Bearer tok"}
    assert calls[0]["json"] == {"id": "CP1", "location": "Oslo"}
    cases: list[tuple[Any, str, bool]] = [
        (FakeResponse(409, {}), "already registered", False),
        (FakeResponse(401, {}), "refused the provisioning token", False),
        (FakeResponse(503, {"message": "busy"}), "answered 503 (busy)", True),
        (requests.exceptions.SSLError("bad cert"), "certificate not trusted", False),
        (
            requests.exceptions.ConnectionError("... [Errno 111] Connection refused')"),
            "Cannot reach the Registry at https://reg:8443: Connection refused",
            True,
        ),
    ]
    for answer, text, retriable in cases:
        answers.append(answer)
        with pytest.raises(RegistryError, match=re.escape(text)) as caught:
            client.register("CP1", "Oslo", "tok")
        assert caught.value.retriable is retriable
    answers.append(FakeResponse(204))
    client.deregister("CP1", "abc")
    assert calls[-1]["method"] == "DELETE" and calls[-1]["url"].endswith("/chargepoints/CP1")
    answers.append(FakeResponse(404, {}))
    with pytest.raises(RegistryError, match="not registered"):
        client.deregister("CP1", "abc")
