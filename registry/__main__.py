"""``ev-registry``: serve charge-point registration over HTTPS until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from sqlalchemy.engine import make_url

from common.config import HostPort, argv_or_default, run_main
from common.db import Database, open_database
from common.db.auditkeys import load_audit_keys
from common.errors import ConfigError
from common.events.relay import OutboxRelay
from common.http import ConnectionLimits
from common.logs import setup_logging
from common.ready import announce
from registry.app import create_app
from registry.server import HttpsServer
from registry.settings import PROG, Settings, parse_settings
from registry.tls import TlsFiles, check_supplied, ensure_certificates

__all__ = ["main"]

log = logging.getLogger("registry")


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(PROG, lambda: _run(argv_or_default(argv)))


def _tls(settings: Settings) -> TlsFiles:
    if settings.tls_cert is not None and settings.tls_key is not None:
        return check_supplied(settings.tls_cert, settings.tls_key)
    names = list(settings.tls_san)
    if settings.listen.host not in {"", "0.0.0.0", "::"}:
        names.append(settings.listen.host)  # clients will use the address we listen on
    return ensure_certificates(settings.data_dir / "registry-tls", names)


def _run(argv: list[str]) -> int:
    settings = parse_settings(argv)
    setup_logging("registry", settings.log_level)
    tls = _tls(settings)
    db = open_database(settings.database_url, audit_keys=load_audit_keys(settings.data_dir))
    relay: OutboxRelay | None = None
    if settings.kafka_bootstrap:
        relay = OutboxRelay(db, settings.kafka_bootstrap)
        relay.start_thread()
    else:
        log.info("EV_KAFKA_BOOTSTRAP not set: events wait in the outbox for a relay")
    try:
        return _serve(settings, tls, db)
    finally:
        if relay is not None:
            relay.stop()
        db.dispose()


def _serve(settings: Settings, tls: TlsFiles, db: Database) -> int:
    app = create_app(settings, db)
    server = HttpsServer(
        app,
        settings.listen.host,
        settings.listen.port,
        certfile=tls.cert,
        keyfile=tls.key,
        threads=settings.threads,
        limits=ConnectionLimits(
            head_timeout=settings.head_timeout, per_address=settings.concurrency_per_ip
        ),
    )
    try:
        host, port = server.prepare()
    except OSError as exc:
        raise ConfigError(
            "--listen", f"cannot listen on {settings.listen}: {exc.strerror}"
        ) from None

    stop = threading.Event()
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            server.serve_forever()
        except BaseException as exc:  # reported by the main thread, which then exits 1
            failed.append(exc)
        finally:
            stop.set()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=serve, name="https", daemon=True)
    thread.start()

    if tls.ca is not None:
        print(f"CA certificate: {tls.ca}", flush=True)
    else:
        print(f"TLS certificate: {tls.cert} (supplied)", flush=True)
    print(f"Registry listening on https://{HostPort(host, port)}", flush=True)
    announce("registry", url=f"https://{HostPort(host, port)}", ca=tls.ca)
    log.info(
        "registry started",
        extra={
            "fields": {
                "listen": HostPort(host, port),
                "database": make_url(settings.database_url).render_as_string(hide_password=True),
                "tls_generated": tls.generated,
                "operator_token": settings.operator_token is not None,
            }
        },
    )
    while not stop.wait(0.5):
        pass
    server.stop()
    thread.join(timeout=5)
    if failed:
        log.error("server stopped unexpectedly", exc_info=failed[0])
        return 1
    log.info("registry stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
