"""Several Central processes on one PostgreSQL database and one broker.

Charge points are real engine and monitor processes given every Central's address;
drivers connect to a Central that does not serve the CP they charge at. One Central is
SIGKILLed mid-supply: its CPs come back on the others, and the database shows every
session settled exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from central.drivers import add_driver
from common.client import AuthenticationFailed, ConnectionClosed, connect
from common.config import HostPort
from common.procs import ServiceProcess
from common.protocol import Connection
from common.protocol.errors import HandshakeError
from common.protocol.handshake import ClientHandshake, Role
from common.protocol.messages import MessageType
from common.tcp import free_port, read_message
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.broker import EmbeddedBroker
from tests.support.central import CentralProcess, provision_cp, start_central
from tests.support.cluster import Cluster
from tests.support.scrypt import CHEAP_SCRYPT, CHEAP_SCRYPT_ENV

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TARGET_KWH = 6.0  # at 120x, 11 kW: about 16 s of supply, long enough to outlive a kill


@pytest.fixture
def cluster(
    tmp_path: Path,
    postgres_url: str,
    free_port: Callable[[], int],
    broker: EmbeddedBroker,
    request: pytest.FixtureRequest,
) -> Iterator[Cluster]:
    made = Cluster.start(tmp_path, postgres_url, 3, free_port, kafka=broker.bootstrap)
    failed_before = request.session.testsfailed
    yield made
    made.stop()
    if request.session.testsfailed > failed_before:
        print(made.tails())


def owner_of(shown: dict[str, dict[str, object]], cp_id: str) -> str:
    owners = {str(v["central"]) for k, v in shown.items() if k.endswith(f" {cp_id}")}
    assert len(owners) == 1, f"{cp_id} is shown served by {owners}"
    return owners.pop()


def central_at(cluster: Cluster, addr: str) -> CentralProcess:
    return next(c for c in cluster.centrals if str(c.addr) == addr)


def test_cps_spread_drivers_charge_across_and_a_killed_central_fails_over(
    cluster: Cluster,
) -> None:
    async def scenario() -> None:
        cp_ids = [f"K{i}" for i in range(6)]
        for cp_id in cp_ids:
            cluster.add_cp(cp_id)
        shown = await cluster.wait_all("ACTIVATED", 60)
        owners = {cp_id: owner_of(shown, cp_id) for cp_id in cp_ids}
        assert len(set(owners.values())) >= 2, f"all CPs on one Central: {owners}"

        # The operator's stop-all through one Central reaches every CP, wherever it is.
        first, second = cluster.centrals[0], cluster.centrals[1]
        assert first.post("/chargepoints/stop-all").status_code == 200
        await cluster.wait_all("STOPPED", 20)
        assert second.post("/chargepoints/resume-all").status_code == 200
        await cluster.wait_all("ACTIVATED", 20)
        # A weather alert raised on one Central holds every CP of the location; cleared on
        # another, it releases them.
        third = cluster.centrals[2]
        assert third.post("/weather/alerts", {"location": "Madrid"}).status_code == 201
        await cluster.wait_all("STOPPED", 20)
        cleared = await asyncio.to_thread(
            requests.delete,
            f"{first.api}/weather/alerts/Madrid",
            headers={"Authorization": f"Bearer {first.token}"},
            timeout=20,
        )
        assert cleared.status_code == 200, cleared.text
        await cluster.wait_all("ACTIVATED", 20)

        # Every driver is connected to a Central that does not serve its CP.
        drivers = {}
        for cp_id in cp_ids:
            other = next(c for c in cluster.centrals if str(c.addr) != owners[cp_id])
            driver_id = f"D{cp_id}"
            secret = add_driver(cluster.db_url, driver_id, CHEAP_SCRYPT, TEST_AUDIT_KEYS)
            link = await connect(other.addr, Role.DRIVER, driver_id, secret=secret)
            link.send(MessageType.LIST_CPS, {})
            free = await link.recv_until({MessageType.CP_LIST}, 10)
            assert {cp["id"] for cp in free.body["cps"]} == set(cp_ids)  # served anywhere
            drivers[cp_id] = link
        for cp_id, link in drivers.items():
            link.send(MessageType.CHARGE_REQUEST, {"cp_id": cp_id, "target_kwh": TARGET_KWH})
        for cp_id, link in drivers.items():
            got = await link.recv_until(
                {MessageType.CHARGE_AUTHORIZED, MessageType.CHARGE_DENIED}, 15
            )
            assert got.type is MessageType.CHARGE_AUTHORIZED, got.body
            started = await link.recv_until({MessageType.SUPPLY_STARTED}, 15)
            assert started.body["cp_id"] == cp_id
            progress = await link.recv_until({MessageType.TELEMETRY}, 15)
            assert progress.body["cp_id"] == cp_id
        await cluster.wait_all("SUPPLYING", 20)

        # The Central serving the most CPs dies mid-supply.
        victim_addr = max(set(owners.values()), key=list(owners.values()).count)
        victim = central_at(cluster, victim_addr)
        victim.proc.kill()
        moved = [cp_id for cp_id, addr in owners.items() if addr == victim_addr]
        assert moved

        # Every CP ends its supply (at its target) and is ACTIVATED on the survivors.
        shown = await cluster.wait_all("ACTIVATED", 90)
        for cp_id in moved:
            assert owner_of(shown, cp_id) != victim_addr
        # A driver whose Central survived got its ticket from the CP's owner, wherever.
        driver_at = {
            cp_id: next(str(c.addr) for c in cluster.centrals if str(c.addr) != owners[cp_id])
            for cp_id in cp_ids
        }
        for cp_id, link in drivers.items():
            if driver_at[cp_id] != victim_addr:
                ticket = await link.recv_until({MessageType.TICKET}, 15)
                assert (ticket.body["cp_id"], ticket.body["kwh"]) == (cp_id, TARGET_KWH)
            await link.close()

        engine = sa.create_engine(cluster.db_url)
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT id, status, energy_kwh FROM charging_sessions")
            ).all()
            ended = conn.execute(
                sa.text("SELECT payload FROM outbox WHERE payload LIKE '%session.ended%'")
            ).scalars()
            tickets = [json.loads(p) for p in ended]
            reports = conn.execute(
                sa.text("SELECT payload FROM outbox WHERE payload LIKE '%session.progress%'")
            ).scalars()
            telemetry: dict[str, float] = {}
            for payload in reports:
                event = json.loads(payload)
                sid = event["session_id"]
                telemetry[sid] = max(telemetry.get(sid, 0.0), event["data"]["kwh"])
        engine.dispose()
        assert len(rows) == len(cp_ids)
        assert {status for _, status, _ in rows} == {"ended"}
        ticket_ids = [t["session_id"] for t in tickets if t["type"] == "session.ended"]
        assert sorted(ticket_ids) == sorted(sid for sid, _, _ in rows)  # once each
        for sid, _, kwh in rows:
            assert Decimal(kwh) == Decimal(str(TARGET_KWH)), (sid, kwh)
            assert telemetry[sid] <= float(kwh)
        billed = sum(Decimal(str(t["data"]["kwh"])) for t in tickets)
        assert billed == sum(Decimal(kwh) for _, _, kwh in rows)

    asyncio.run(scenario())


def test_a_central_that_does_not_serve_a_cp_refuses_its_logins(
    tmp_path: Path, postgres_url: str, free_port: Callable[[], int]
) -> None:
    """A monitor or engine reaching a non-owner is sent to the owner, never served."""
    cluster = Cluster.start(tmp_path, postgres_url, 2, free_port)
    try:

        async def scenario() -> None:
            secret = provision_cp(postgres_url, "R1")
            a, b = cluster.centrals
            monitor = await connect(a.addr, Role.MONITOR, "R1", secret=secret)
            # B does not serve R1 while A lives: it says where R1 is served instead.
            for role, kw in (
                (Role.MONITOR, {"secret": secret}),
                (Role.ENGINE, {"session_key": monitor.session_key}),
            ):
                with pytest.raises(HandshakeError) as refused:
                    await _raw_login(b, role, "R1", **kw)
                assert refused.value.code == "moved"
                assert refused.value.moved_to == str(a.addr)
            # Following the list, a login lands on A, the owner.
            engine = await connect(
                [b.addr, a.addr], Role.ENGINE, "R1", session_key=monitor.session_key
            )
            await a.wait_state("R1", "ACTIVATED")
            assert (await b.wait_state("R1", "ACTIVATED"))["central"] == str(a.addr)
            # A wrong secret is refused as before, moved or not.
            with pytest.raises(AuthenticationFailed):
                await connect(a.addr, Role.MONITOR, "R1", secret="wrong")
            await engine.close()
            await monitor.close()

        asyncio.run(scenario())
    finally:
        cluster.stop()


def test_a_stale_owner_lets_go_of_a_cp_whose_lease_was_taken(
    tmp_path: Path, postgres_url: str, free_port: Callable[[], int]
) -> None:
    """When the database names another owner, the old one closes the CP's links."""
    cluster = Cluster.start(tmp_path, postgres_url, 2, free_port)
    try:

        async def scenario() -> None:
            secret = provision_cp(postgres_url, "S1")
            a, b = cluster.centrals
            monitor = await connect(a.addr, Role.MONITOR, "S1", secret=secret)
            await a.wait_state("S1", "ACTIVATED")
            engine = sa.create_engine(postgres_url)
            with engine.begin() as conn:  # B took it over (as after a long pause of A)
                conn.execute(
                    sa.text("UPDATE cp_owners SET node_id = :b WHERE cp_id = 'S1'"),
                    {"b": str(b.addr)},
                )
            engine.dispose()
            with pytest.raises(ConnectionClosed):
                while True:
                    await monitor.recv(10)
            await monitor.close()
            # A no longer acts for S1: a login there is sent to B.
            with pytest.raises(HandshakeError) as refused:
                await _raw_login(a, Role.MONITOR, "S1", secret=secret)
            assert refused.value.moved_to == str(b.addr)
            assert "charge point given up" in a.proc.output()

        asyncio.run(scenario())
    finally:
        cluster.stop()


async def _raw_login(central: CentralProcess, role: Role, cp_id: str, **kw: object) -> None:
    """One login without following ``moved``: raises the handshake's error."""
    reader, writer = await asyncio.open_connection(central.addr.host, central.addr.port)
    conn = Connection(time.time)
    handshake = ClientHandshake(role, cp_id, clock=time.time, **kw)  # type: ignore[arg-type]
    hello = handshake.start()
    writer.write(conn.send(hello.type, hello.body))
    try:
        while handshake.session_key is None:
            message = await read_message(reader, conn, writer.write)
            assert message is not None
            reply = handshake.receive(message)
            if reply is not None:
                writer.write(conn.send(reply.type, reply.body))
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def test_a_second_central_on_one_sqlite_file_stops_with_one_line(
    tmp_path: Path, sqlite_url: str, free_port: Callable[[], int]
) -> None:
    """Several Centrals need PostgreSQL: on SQLite the second says so and exits 2."""
    first = start_central(tmp_path, sqlite_url, free_port(), free_port(), name="first")
    try:
        second = ServiceProcess(
            [
                sys.executable,
                "-m",
                "central",
                "--listen",
                f"127.0.0.1:{free_port()}",
                "--api",
                f"127.0.0.1:{free_port()}",
                "--no-console",
            ],
            env={
                "EV_DATABASE_URL": sqlite_url,
                "EV_OPERATOR_TOKEN": "t" * 20,
                "EV_DATA_DIR": str(tmp_path / "data"),
            },
            log_path=tmp_path / "second.log",
            name="second",
        ).start()
        assert second.wait(30) == 2
        lines = second.output().strip().splitlines()
        assert len(lines) == 1, lines
        assert "several Centrals need PostgreSQL" in lines[0]
        assert first.proc.running
        second.stop()
    finally:
        first.proc.stop()


def _port_pair() -> int:
    """A port P with P+1 free as well (the two workers' ports)."""
    for _ in range(50):
        port = free_port()
        with contextlib.suppress(OSError), socket.socket() as probe:
            probe.bind(("127.0.0.1", port + 1))
            return port
    raise AssertionError("no two consecutive free ports")


def test_workers_run_on_consecutive_ports_and_a_dead_one_is_started_again(
    tmp_path: Path, postgres_url: str
) -> None:
    port, api = _port_pair(), _port_pair()
    supervisor = ServiceProcess(
        [
            sys.executable,
            "-m",
            "central",
            "--workers",
            "2",
            "--listen",
            f"127.0.0.1:{port}",
            "--api",
            f"127.0.0.1:{api}",
            "--heartbeat-timeout",
            "2",
        ],
        env={
            "EV_DATABASE_URL": postgres_url,
            "EV_OPERATOR_TOKEN": "t" * 20,
            **CHEAP_SCRYPT_ENV,
            "EV_DATA_DIR": str(tmp_path / "data"),
        },
        log_path=tmp_path / "workers.log",
        name="workers",
    ).start()
    try:
        worker0 = {"api": f"http://127.0.0.1:{api}/api"}
        supervisor.wait_ready("central", 30, where=worker0)
        supervisor.wait_ready("central", 30, where={"api": f"http://127.0.0.1:{api + 1}/api"})
        addrs = [HostPort("127.0.0.1", port), HostPort("127.0.0.1", port + 1)]

        async def scenario() -> None:
            secret = provision_cp(postgres_url, "W1")
            monitor = await connect(addrs, Role.MONITOR, "W1", secret=secret)
            monitor.send(MessageType.HEARTBEAT, {"engine_ok": True})
            for each in (api, api + 1):
                shown = await _wait_json(f"http://127.0.0.1:{each}/api/chargepoints/W1")
                assert shown["state"] == "ACTIVATED"
            await monitor.close()

        asyncio.run(scenario())
        pid = _pid_listening(port)  # worker 0
        os.kill(pid, signal.SIGKILL)
        supervisor.wait_for_line("Central worker died; starting it again", 15)
        supervisor.wait_ready("central", 30, where=worker0, count=2)  # worker 0 serves again
    finally:
        assert supervisor.stop() == 0
    assert "Traceback" not in supervisor.output()


async def _wait_json(url: str, timeout: float = 15) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        response = await asyncio.to_thread(requests.get, url, timeout=5)
        if response.ok and response.json().get("state") == "ACTIVATED":
            return dict(response.json())
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.2)


def _pid_listening(port: int) -> int:
    """The process listening on 127.0.0.1:``port`` (from /proc: sockets, then owners)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                fields = row.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":
                    inodes.add(fields[9])
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid)
    raise AssertionError(f"nobody listens on {port}")
