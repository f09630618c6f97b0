"""docker-compose.yml, Dockerfile and example.env, checked against the code.

There is no container engine on the test machines, so the file is checked statically:
the services and profiles per machine, the images, every service's health check, and
that every ``EV_*`` name given to a service is one of that service's own settings (as its
``--help`` lists them) with a value its settings accept.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from common.config import parse_host_port, parse_http_url

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

MACHINES = {
    "central": {"kafka", "postgres", "registry", "central", "web", "weather"},
    "cp": {"cp1-engine", "cp1-monitor", "cp2-engine", "cp2-monitor"},
    "driver": {"driver"},
}
PROJECT_IMAGE = "${EV_IMAGE:-evcharging:latest}"
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "API_KEY", "AUDIT_KEY")
VARIABLE = re.compile(
    r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})"
)


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}`` and ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        value = env.get(name)
        if op in (":?", "?") and not value:
            raise LookupError(f"{name}: {arg}")
        if op == ":-" and not value:
            return arg
        if op == "-" and value is None:
            return arg
        return value or ""

    return VARIABLE.sub(one, text)


def read_env_file(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            pairs[name.strip()] = value.strip()
    return pairs


RAW_TEXT = (ROOT / "docker-compose.yml").read_text()
RAW = yaml.safe_load(RAW_TEXT)
EXAMPLE = read_env_file(ROOT / "example.env")
# example.env with every secret filled in: what an operator's .env looks like.
FILLED = {k: v or f"filled-{k.lower()}" for k, v in EXAMPLE.items()}
COMPOSE = yaml.safe_load(interpolate(RAW_TEXT, FILLED))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROJECT = {name: s for name, s in SERVICES.items() if s.get("image") == "evcharging:latest"}


def environment(service: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def program(service: str) -> str:
    return str(SERVICES[service]["command"][0])


def script_main(name: str) -> Callable[[list[str]], int]:
    module, _, func = PYPROJECT["project"]["scripts"][name].partition(":")
    return getattr(importlib.import_module(module), func)


def test_profiles_are_the_three_machines() -> None:
    by_profile: dict[str, set[str]] = {}
    for name, service in SERVICES.items():
        assert len(service.get("profiles", [])) == 1, f"{name} belongs to exactly one machine"
        by_profile.setdefault(service["profiles"][0], set()).add(name)
    assert by_profile == MACHINES


def test_images_kafka_kraft_postgres_and_one_project_image() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"], "KRaft, no ZooKeeper"
    assert not any("zookeeper" in str(s.get("image", "")) for s in SERVICES.values())
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert set(PROJECT) == set(SERVICES) - {"kafka", "postgres"}
    for name in PROJECT:
        assert RAW["services"][name]["image"] == PROJECT_IMAGE, name
        assert SERVICES[name]["build"] == ".", f"{name} is built from the one Dockerfile"


def test_dockerfile_installs_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = [
        p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    ]
    for package in packages:
        assert f"COPY {package} ./{package}" in dockerfile, package
    assert "pip install '.[speed]'" in dockerfile, "with uvloop, as benchmarked"
    assert re.search(r"^USER (?!root)", dockerfile, re.M), "services do not run as root"


def test_commands_are_the_project_programs() -> None:
    expected = {
        "registry": "ev-registry",
        "central": "ev-central",
        "web": "ev-web",
        "weather": "ev-weather",
        "cp1-engine": "ev-cp-engine",
        "cp2-engine": "ev-cp-engine",
        "cp1-monitor": "ev-cp-monitor",
        "cp2-monitor": "ev-cp-monitor",
        "driver": "ev-driver",
    }
    assert {name: program(name) for name in PROJECT} == expected
    for name in PROJECT:
        assert program(name) in PYPROJECT["project"]["scripts"]


@pytest.mark.parametrize("name", sorted(MACHINES["central"] | MACHINES["cp"] | MACHINES["driver"]))
def test_every_service_has_a_health_check(name: str) -> None:
    check = SERVICES[name].get("healthcheck") or {}
    assert not check.get("disable"), name
    test = check.get("test")
    assert isinstance(test, list) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1, name
    assert check.get("interval") and check.get("retries"), name


@pytest.mark.parametrize("name", sorted(PROJECT))
def test_health_checks_probe_the_port_the_service_listens_on(name: str) -> None:
    test = SERVICES[name]["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "common.healthcheck"], name
    env = environment(name)
    listens = [v for k, v in env.items() if k.endswith("_LISTEN")]
    targets = " ".join(test[4:])
    for address in listens:
        assert f":{parse_host_port(address).port}" in targets, f"{name} checks {targets}"
    if not listens:  # a client: it checks what it depends on, by the variables it uses
        for variable in re.findall(r"\$(\w+)", targets):
            assert variable in env, f"{name}'s health check uses {variable}, which it is not given"


def help_text(script: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        script_main(script)(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(PROJECT))
def test_every_ev_variable_is_a_setting_of_that_service(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    documented = set(re.findall(r"EV_[A-Z0-9_]+", help_text(program(name), capsys)))
    given = {k for k in environment(name) if k.startswith("EV_")}
    assert given, name
    unknown = given - documented
    assert not unknown, f"{name} ({program(name)}) has no setting named {sorted(unknown)}"


@pytest.mark.parametrize("name", sorted(PROJECT))
def test_values_are_what_the_settings_accept(name: str) -> None:
    for key, value in environment(name).items():
        if key.endswith(("_LISTEN", "_ADDR")):
            parse_host_port(value)
        elif key.endswith(("_URL", "_API")) and key != "EV_DATABASE_URL":
            parse_http_url(value)
        elif key == "EV_DATABASE_URL":
            assert value.startswith("postgresql+psycopg2://") and "@postgres:5432/" in value


def port_of(service: str, key: str) -> int:
    return parse_host_port(environment(service)[key]).port


def test_addresses_agree_across_machines() -> None:
    central_port = port_of("central", "EV_CENTRAL_LISTEN")
    api_port = port_of("central", "EV_CENTRAL_API_LISTEN")
    registry_port = port_of("registry", "EV_REGISTRY_LISTEN")
    host = FILLED["CENTRAL_HOST"]
    for name in MACHINES["cp"] | MACHINES["driver"]:
        assert environment(name)["EV_CENTRAL_ADDR"] == f"{host}:{central_port}", name
    for name in ("web", "weather"):
        assert urlsplit(environment(name)["EV_CENTRAL_API"]).port == api_port, name
    for name in ("cp1-monitor", "cp2-monitor"):
        env = environment(name)
        assert env["EV_REGISTRY_URL"] == f"https://{host}:{registry_port}"
        engine = name.replace("monitor", "engine")
        assert env["EV_CP_ENGINE_ADDR"] == f"{engine}:{port_of(engine, 'EV_CP_ENGINE_LISTEN')}"
        assert env["EV_CP_ID"] == environment(engine)["EV_CP_ID"]
        assert SERVICES[name]["volumes"][0] == SERVICES[engine]["volumes"][0], (
            "an engine and its monitor share the volume with the pairing key"
        )
    assert environment("cp1-engine")["EV_CP_ID"] != environment("cp2-engine")["EV_CP_ID"]
    assert host in environment("registry")["EV_REGISTRY_TLS_SAN"].split(",")
    published = {
        name: {int(p.split(":")[-1]) for p in SERVICES[name].get("ports", [])}
        for name in ("central", "registry", "web")
    }
    ocpp_port = port_of("central", "EV_CENTRAL_OCPP_LISTEN")
    assert published["central"] == {central_port, api_port, ocpp_port}
    assert environment("central")["EV_OCPP_TLS_CERT"].startswith("/registry/")
    assert published["registry"] == {registry_port}
    assert published["web"] == {port_of("web", "EV_WEB_LISTEN")}


def test_secrets_come_only_from_the_env_file() -> None:
    for name, service in RAW["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in SECRET_WORDS) and not key.endswith("_FILE"):
                assert re.fullmatch(r"\$\{\w+(:-)?\}", str(value)), (
                    f"{name}.{key} must come from .env, not the file: {value!r}"
                )
    for key, value in EXAMPLE.items():
        if any(word in key for word in SECRET_WORDS):
            assert value == "", f"example.env must not hold a real {key}"


def test_example_env_names_every_variable_without_a_default() -> None:
    needed = {
        m.group("name")
        for m in VARIABLE.finditer(RAW_TEXT)
        if m.group("name") and not (m.group("op") == ":-" and m.group("arg"))
    }
    assert needed - set(EXAMPLE) == set()
    assert interpolate(RAW_TEXT, FILLED)  # nothing demanded is missing
    with pytest.raises(LookupError, match="CENTRAL_HOST"):
        interpolate(RAW_TEXT, {})


def test_the_env_file_is_never_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in ignored and "!example.env" in ignored
    assert ".env" in (ROOT / ".dockerignore").read_text().splitlines()


@pytest.mark.parametrize(
    "script", sorted(s for s in PYPROJECT["project"]["scripts"] if s != "evcharging")
)
def test_the_readme_lists_every_flag_and_variable(
    script: str, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split(f"#### `{script}`", 1)[1].split("####", 1)[0]
    text = help_text(script, capsys)
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", text)) - {"--help"}
    named |= set(re.findall(r"EV_[A-Z0-9_]+?(?=_FILE\b|\b)", text))  # NAME_FILE: said once
    missing = {name for name in named if name not in section}
    assert not missing, f"README's {script} section lacks {sorted(missing)}"
