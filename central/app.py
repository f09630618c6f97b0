"""Central's composition root: database, writer, relay, network, TCP server, API, console."""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from central.api import Bridge, create_app
from central.auditlog import Checkpointer, latest_published
from central.cluster import TICK, Cluster
from central.console import Console
from central.network import Network
from central.reads import load_alerts, load_cps, load_open_sessions
from central.server import CentralServer
from central.settings import Settings
from central.writer import DbWriter
from common.config import HostPort, make_private_dir
from common.db import Database, open_database
from common.db.auditkeys import AuditKeys
from common.db.chain import ChainVerifier
from common.errors import ConfigError
from common.http import WsgiServer
from common.limits import raise_open_files_limit
from common.ready import announce

__all__ = ["lock_sqlite", "run_central"]

log = logging.getLogger(__name__)

SWITCH_INTERVAL = 0.001  # seconds a thread holds the GIL while another waits (Python: 5 ms)


async def _every(seconds: float, fn: Callable[[], object]) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            result = fn()
            if asyncio.iscoroutine(result):
                await result
        except Exception:
            log.exception("periodic task failed")


def _start_relay(db: Database, bootstrap: str | None) -> object | None:
    if not bootstrap:
        log.warning("EV_KAFKA_BOOTSTRAP not set: events stay in the outbox until a relay runs")
        return None
    from common.events.relay import OutboxRelay

    relay = OutboxRelay(db, bootstrap)
    relay.start_thread()
    return relay


async def serve(settings: Settings, audit_keys: AuditKeys, stop: asyncio.Event) -> None:
    """Run Central until ``stop`` is set."""
    loop = asyncio.get_running_loop()
    db = await loop.run_in_executor(
        None, lambda: open_database(settings.database_url, audit_keys=audit_keys)
    )
    relay = _start_relay(db, settings.kafka_bootstrap)
    writer = DbWriter(db, on_commit=getattr(relay, "wake", None))
    writer.start()
    network = Network(
        writer,
        time.monotonic,
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_timeout=settings.heartbeat_timeout,
        plug_timeout=settings.plug_timeout,
        max_kw=settings.max_kw,
    )

    def load() -> tuple[list[Any], list[Any], list[Any]]:
        with db.transaction() as session:
            return load_cps(session), load_alerts(session), load_open_sessions(session)

    cps, alerts, open_sessions = await loop.run_in_executor(None, load)
    shared = db.engine.dialect.name == "postgresql"  # other Centrals may share the CPs
    # With others, a CP's open sessions are loaded by whichever process takes the CP.
    network.chargepoints.load(cps, alerts, [] if shared else open_sessions)
    server = CentralServer(network, writer, db, scrypt_params=settings.scrypt)
    host, port = await server.start(settings.listen.host, settings.listen.port, serving=False)
    verifier = ChainVerifier(audit_keys)
    await _learn_published_checkpoints(settings, verifier)  # before anyone can ask
    cluster = await _join(settings, db, writer, network, server, port) if shared else None
    await server.serve()
    api = WsgiServer(
        create_app(
            Bridge(loop, network),
            db,
            settings.operator_token,
            verifier,
            weather_token=settings.weather_token,
        ),
        settings.api.host,
        settings.api.port,
        threads=16,
    )
    api_host, api_port = await loop.run_in_executor(None, api.start_thread)
    ocpp = await _start_ocpp(settings, network, server)
    if ocpp is not None:
        ocpp.cluster = cluster
    print(f"Central listening on {host}:{port}", flush=True)
    print(f"API_Central on http://{api_host}:{api_port}/api", flush=True)
    announce("central", listen=HostPort(host, port), api=f"http://{api_host}:{api_port}/api")
    print(
        f"Loaded {len(cps)} charge points (all DISCONNECTED until their monitors connect), "
        f"{len(open_sessions)} open sessions, {len(alerts)} weather alerts",
        flush=True,
    )
    # Everything loaded so far lives as long as Central: keep it out of the collector's
    # scans, and collect young objects less often (a full scan stalls the loop).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    # The database writer is a thread: when it holds the GIL the loop waits up to the
    # switch interval (5 ms) for every wake-up; 1 ms keeps ACKs from queueing behind it.
    sys.setswitchinterval(SWITCH_INTERVAL)
    tasks = [
        asyncio.create_task(_every(1.0, network.chargepoints.check_heartbeats)),
        asyncio.create_task(_every(2.0, server.network_refresh)),
        asyncio.create_task(
            _every(settings.audit_checkpoint_interval, Checkpointer(db, writer, verifier).tick)
        ),
    ]
    if cluster is not None:
        tasks.append(asyncio.create_task(_every(TICK, cluster.tick)))
    console = Console(network, stop, interactive=sys.stdin.isatty()) if settings.console else None
    if console is not None:
        tasks.append(asyncio.create_task(console.run()))
    try:
        await stop.wait()
    finally:
        print("Central shutting down", flush=True)
        for task in tasks:
            task.cancel()
        if ocpp is not None:
            await ocpp.close()
        if cluster is not None:
            await cluster.close()
        await server.close()
        await loop.run_in_executor(None, api.stop)
        await loop.run_in_executor(None, writer.stop)
        if relay is not None:
            await loop.run_in_executor(None, relay.stop)  # type: ignore[attr-defined]
        db.dispose()


async def _learn_published_checkpoints(settings: Settings, verifier: ChainVerifier) -> None:
    """The newest audit checkpoints on Kafka: a chain cut while we were down fails at once."""
    if not settings.kafka_bootstrap:
        return
    from common.events import BrokerUnavailable

    loop = asyncio.get_running_loop()
    try:
        published = await loop.run_in_executor(None, latest_published, settings.kafka_bootstrap)
    except BrokerUnavailable as exc:
        # Stored checkpoints and this run's own still count; the next start tries again.
        log.warning(
            "cannot read published audit checkpoints", extra={"fields": {"reason": str(exc)}}
        )
        return
    for checkpoint in published:
        if not verifier.saw(checkpoint):
            log.warning("published audit checkpoint with a bad signature ignored")


async def _join(
    settings: Settings,
    db: Database,
    writer: DbWriter,
    network: Network,
    server: CentralServer,
    port: int,
) -> Cluster:
    """Join the Centrals sharing this database, known to them by the address CPs reach
    this one at: ``--advertise``, else the listening address (the host name when it
    listens on every interface)."""
    addr = settings.advertise
    if addr is None:
        host = settings.listen.host
        if host in ("", "0.0.0.0", "::"):
            host = socket.gethostname()
        addr = HostPort(host, port)
    cluster = Cluster(db, writer, network, str(addr))
    server.cluster = cluster
    await cluster.start()
    print(f"Serving charge points as {addr} with the other Centrals of this database", flush=True)
    return cluster


def lock_sqlite(url: str) -> object | None:
    """Refuse a second Central on one SQLite database: CPs' ownership needs PostgreSQL.

    Returns the open lock file (held until the process exits), or None for PostgreSQL.

    Raises:
        ConfigError: another Central already runs on this SQLite file.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    path = Path(f"{parsed.database}.central.lock")
    make_private_dir(path.parent)  # the database's directory: 0700 like the data dir
    handle = path.open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise ConfigError(
            "EV_DATABASE_URL",
            f"another Central already runs on the SQLite database {parsed.database}; "
            "several Centrals need PostgreSQL (EV_DATABASE_URL=postgresql+psycopg2://...)",
        ) from None
    return handle


async def _start_ocpp(settings: Settings, network: Network, server: CentralServer) -> Any:
    """The OCPP 1.6J listener, if asked for; it shares the TCP server's login throttle and
    verifier look-ups."""
    if settings.ocpp is None:
        return None
    from central.ocpp import OcppServer, tls_context

    tls = tls_context(*settings.ocpp_tls) if settings.ocpp_tls else None
    ocpp = OcppServer(
        network,
        server.verifiers,
        refresh=server.network_refresh,
        throttle=server.throttle,
        tls=tls,
        scrypt_params=settings.scrypt,
    )
    host, port = await ocpp.start(settings.ocpp.host, settings.ocpp.port)
    scheme = "wss" if tls else "ws"
    print(f"OCPP 1.6J on {scheme}://{host}:{port}/ocpp/<charge point id>", flush=True)
    announce("central-ocpp", url=f"{scheme}://{HostPort(host, port)}/ocpp")
    if tls is None and host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "OCPP without TLS (security profile 1): chargers' secrets cross the network "
            "in clear; give --ocpp-tls-cert and --ocpp-tls-key for profile 2"
        )
    return ocpp


def _event_loop_runner() -> Callable[..., Any]:
    """uvloop when installed (``pip install evcharging[speed]``), unless EV_EVENT_LOOP=asyncio.

    uvloop's transports cut the event loop's cost per message (reads, ACK writes) by
    about a third; bench/throughput.py measures it. See docs/performance.md.
    """
    if os.environ.get("EV_EVENT_LOOP", "").lower() != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            return uvloop.run
    return asyncio.run


def run_central(settings: Settings, audit_keys: AuditKeys) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(settings, audit_keys, stop)

    lock = lock_sqlite(settings.database_url)  # noqa: F841 - held while Central runs
    files = raise_open_files_limit()
    log.info("open-file limit", extra={"fields": {"nofile": files}})
    _event_loop_runner()(main())
    return 0
