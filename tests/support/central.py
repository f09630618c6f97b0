"""Central under test: a real ``python -m central`` process and scripted peers.

Scripted peers speak the real protocol through ``common.client`` (the same code the
monitor, engine and driver use); only the decisions (plug now, report a fault) are
scripted.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

from common.client import ClientLink, connect
from common.config import HostPort
from common.db.provision import provision
from common.procs import ServiceProcess
from common.protocol.handshake import Role
from common.protocol.messages import Message, MessageType
from tests.support.scrypt import CHEAP_SCRYPT, CHEAP_SCRYPT_ENV

__all__ = ["CentralProcess", "ScriptedCP", "provision_cp", "start_central"]


def provision_cp(url: str, cp_id: str, location: str = "Madrid", price: str = "0.40") -> str:
    """Put a registered CP and its verifier in the shared DB (what the Registry does)."""
    made = provision(url, [cp_id], params=CHEAP_SCRYPT, locations=[location], price=Decimal(price))
    return made.cps[cp_id]


@dataclass
class CentralProcess:
    proc: ServiceProcess
    addr: HostPort
    api: str
    token: str
    db_url: str
    ocpp_url: str | None = None  # ws[s]://127.0.0.1:PORT/ocpp when started with ocpp_port
    weather_token: str = ""  # EV_WEATHER_TOKEN: the weather office's, weather routes only

    def get(
        self,
        path: str,
        *,
        anonymous: bool = False,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> requests.Response:
        """GET as the operator (the full read model), or ``anonymous`` (the public one)."""
        sent = {} if anonymous else {"Authorization": f"Bearer {self.token}"}
        sent.update(headers or {})
        return requests.get(f"{self.api}{path}", timeout=20, headers=sent, **kw)

    def post(self, path: str, json: Any = None, token: str | None = None) -> requests.Response:
        return requests.post(
            f"{self.api}{path}",
            json=json,
            timeout=20,
            headers={"Authorization": f"Bearer {token or self.token}"},
        )

    def cp(self, cp_id: str) -> dict[str, Any]:
        """The CP as API_Central shows it; state "UNKNOWN" until Central has loaded it."""
        response = self.get(f"/chargepoints/{cp_id}")
        if response.status_code == 404:
            return {"id": cp_id, "state": "UNKNOWN"}
        response.raise_for_status()
        return dict(response.json())

    async def wait_state(self, cp_id: str, state: str, timeout: float = 10) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            cp = await asyncio.to_thread(self.cp, cp_id)
            if cp["state"] == state:
                return cp
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{cp_id} is {cp['state']}, not {state}, after {timeout} s")
            await asyncio.sleep(0.1)


def start_central(
    tmp_path: Path,
    db_url: str,
    port: int,
    api_port: int,
    *,
    heartbeat_timeout: float = 2.0,
    token: str | None = None,
    name: str = "central",
    kafka: str | None = None,
    max_kw: float = 3000,
    ocpp_port: int | None = None,
    ocpp_tls: tuple[Path, Path] | None = None,
    weather_token: str | None = None,
    audit_checkpoint_interval: float | None = None,
) -> CentralProcess:
    """Start ``python -m central``; with ``kafka`` its outbox relay publishes there.

    With ``ocpp_port`` it also listens for OCPP 1.6J chargers (over TLS with
    ``ocpp_tls``, a certificate and its key). It signs audit entries with
    ``TEST_AUDIT_KEY`` (tests/conftest.py puts it in every child's environment).
    """
    token = token or secrets.token_urlsafe(16)
    weather_token = weather_token or secrets.token_urlsafe(16)
    extra = {"EV_KAFKA_BOOTSTRAP": kafka} if kafka else {}
    if audit_checkpoint_interval is not None:
        extra["EV_AUDIT_CHECKPOINT_INTERVAL"] = str(audit_checkpoint_interval)
    ocpp_args: list[str] = []
    if ocpp_port is not None:
        ocpp_args = ["--ocpp", f"127.0.0.1:{ocpp_port}"]
    if ocpp_tls is not None:
        ocpp_args += ["--ocpp-tls-cert", str(ocpp_tls[0]), "--ocpp-tls-key", str(ocpp_tls[1])]
    proc = ServiceProcess(
        [
            sys.executable,
            "-m",
            "central",
            "--listen",
            f"127.0.0.1:{port}",
            "--api",
            f"127.0.0.1:{api_port}",
            "--heartbeat-timeout",
            str(heartbeat_timeout),
            # Test engines run up to 120x real time: 11 kW delivers 1,320 kW's worth a second.
            "--max-kw",
            str(max_kw),
            "--no-console",
            *ocpp_args,
        ],
        env={
            "EV_DATABASE_URL": db_url,
            "EV_OPERATOR_TOKEN": token,
            "EV_WEATHER_TOKEN": weather_token,
            **CHEAP_SCRYPT_ENV,
            "EV_DATA_DIR": str(tmp_path / "data"),
            **extra,
        },
        log_path=tmp_path / f"{name}.log",
        name=name,
    ).start()
    proc.wait_ready("central", timeout=30)
    scheme = "wss" if ocpp_tls else "ws"
    return CentralProcess(
        proc,
        HostPort("127.0.0.1", port),
        f"http://127.0.0.1:{api_port}/api",
        token,
        db_url,
        f"{scheme}://127.0.0.1:{ocpp_port}/ocpp" if ocpp_port is not None else None,
        weather_token,
    )


@dataclass
class ScriptedCP:
    """A charge point's monitor and engine links, driven by the test."""

    cp_id: str
    secret: str
    addr: HostPort
    monitor: ClientLink | None = None
    engine: ClientLink | None = None
    engine_ok: bool = True
    beating: bool = True
    engine_inbox: list[Message] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def connect(self) -> ScriptedCP:
        self.monitor = await connect(self.addr, Role.MONITOR, self.cp_id, secret=self.secret)
        self.engine = await connect(
            self.addr, Role.ENGINE, self.cp_id, session_key=self.monitor.session_key
        )
        self._tasks.append(asyncio.create_task(self._heartbeat()))
        return self

    async def _heartbeat(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                if self.beating and self.monitor and not self.monitor.closed:
                    self.monitor.send(MessageType.HEARTBEAT, {"engine_ok": self.engine_ok})
                await asyncio.sleep(0.3)

    async def accept_authorization(self, timeout: float = 10) -> str:
        """Wait for AUTHORIZE_SUPPLY, accept it; return the session id."""
        assert self.engine is not None
        msg = await self.engine.recv_until({MessageType.AUTHORIZE_SUPPLY}, timeout)
        session_id = str(msg.body["session_id"])
        self.engine.send(MessageType.CHARGE_AUTHORIZED, {"session_id": session_id})
        return session_id

    def plug(self, session_id: str) -> None:
        assert self.engine is not None
        self.engine.send(MessageType.SUPPLY_STARTED, {"session_id": session_id})

    def telemetry(self, session_id: str, kwh: float, kw: float = 11.0) -> None:
        assert self.engine is not None
        self.engine.send(MessageType.TELEMETRY, {"session_id": session_id, "kwh": kwh, "kw": kw})

    async def unplug(self, session_id: str, kwh: float) -> Message:
        assert self.engine is not None
        self.engine.send(
            MessageType.SUPPLY_ENDED, {"session_id": session_id, "kwh": kwh, "reason": "unplugged"}
        )
        return await self.engine.recv_until({MessageType.TICKET}, 10)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for link in (self.engine, self.monitor):
            if link is not None:
                await link.close()


async def driver(addr: HostPort, driver_id: str, secret: str) -> ClientLink:
    return await connect(addr, Role.DRIVER, driver_id, secret=secret)
