"""docker-compose.scale.yml: two Central replicas, and every client told both addresses.

Checked statically like docker-compose.yml (tests/deploy/test_compose.py): the override
is merged the way compose merges it (a service's environment is the union, the override
winning), then its addresses and settings are checked against the code.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from common.config import parse_centrals, parse_host_port
from tests.deploy.test_compose import (
    FILLED,
    MACHINES,
    ROOT,
    SERVICES,
    help_text,
    interpolate,
    script_main,
)

SCALE = yaml.safe_load(interpolate((ROOT / "docker-compose.scale.yml").read_text(), FILLED))
SCALED: dict[str, dict[str, Any]] = SCALE["services"]


def merged_env(name: str) -> dict[str, str]:
    base = SERVICES.get(name, {}).get("environment") or {}
    extra = SCALED.get(name, {}).get("environment") or {}
    return {k: str(v) for k, v in {**base, **extra}.items()}


def published(name: str) -> dict[int, int]:
    """host port -> container port ("[IP:]HOST:CONTAINER")"""
    ports = SCALED[name].get("ports") or SERVICES[name].get("ports") or []
    return {int(p.split(":")[-2]): int(p.split(":")[-1]) for p in ports}


def test_every_client_is_given_every_central() -> None:
    host = FILLED["CENTRAL_HOST"]
    names = ("central", "central-2")
    advertised = {parse_host_port(merged_env(n)["EV_CENTRAL_ADVERTISE"]) for n in names}
    assert len(advertised) == 2
    for name in ("central", "central-2"):
        addr = parse_host_port(merged_env(name)["EV_CENTRAL_ADVERTISE"])
        listen = parse_host_port(merged_env(name)["EV_CENTRAL_LISTEN"])
        assert addr.host == host
        assert published(name)[addr.port] == listen.port, f"{name} advertises what it publishes"
    for name in MACHINES["cp"] | MACHINES["driver"]:
        assert set(parse_centrals(merged_env(name)["EV_CENTRAL_ADDR"])) == advertised, name


def test_the_replica_runs_on_the_central_machine_with_the_same_database() -> None:
    replica = SCALED["central-2"]
    assert replica["profiles"] == ["central"]
    assert replica["command"] == ["ev-central"]
    env = merged_env("central-2")
    assert env["EV_DATABASE_URL"] == merged_env("central")["EV_DATABASE_URL"]
    assert env["EV_KAFKA_BOOTSTRAP"] == merged_env("central")["EV_KAFKA_BOOTSTRAP"]
    assert set(published("central-2")).isdisjoint(published("central"))
    # The replica holds the same secrets and keys as central, and keeps API_Central on
    # the host's loopback as central does.
    for name in ("EV_OPERATOR_TOKEN", "EV_WEATHER_TOKEN", "EV_AUDIT_KEY", "EV_AUDIT_KEY_FILE"):
        assert env[name] == merged_env("central")[name], name
    assert "127.0.0.1:8002:8001" in replica["ports"]
    assert "registry-data:/registry:ro" in replica["volumes"]


def test_the_replicas_settings_are_ev_central_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert script_main("ev-central")
    documented = help_text("ev-central", capsys)
    for key in merged_env("central-2"):
        assert key in documented, key
    assert "EV_CENTRAL_ADVERTISE" in documented
