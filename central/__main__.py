"""``ev-central``: the Central server, and driver account management.

ev-central [--listen HOST:PORT] [--api HOST:PORT] ...   run Central
ev-central drivers add ID [--secret-file FILE]          create a driver account
ev-central drivers list                                 list driver accounts
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from central.app import CentralSettings, run_central
from central.chargepoints import HEARTBEAT_INTERVAL, HEARTBEATS_MISSED
from central.drivers import add_driver, list_drivers
from central.energy import DEFAULT_MAX_KW
from central.workers import check_workers, run_workers
from common.config import (
    HostPort,
    ServiceParser,
    argv_or_default,
    parse_host_port,
    parse_positive_float,
    parse_positive_int,
    read_secret,
    run_main,
)
from common.db import database_url
from common.db.auditkeys import load_audit_keys
from common.errors import ConfigError
from common.logs import setup_logging
from common.protocol.keys import ScryptParams

__all__ = ["main"]

PROG = "ev-central"
DESCRIPTION = """EVCharging Central: the TCP server that charge points (monitor + engine) and
drivers connect to, the charge-point state machine, charging sessions and tickets, and
API_Central (JSON over HTTP).

Run it:                 EV_OPERATOR_TOKEN=... ev-central --listen 0.0.0.0:7000 --api 0.0.0.0:8001
With OCPP 1.6J:         ev-central ... --ocpp 0.0.0.0:9000 --ocpp-tls-cert C --ocpp-tls-key K
                        (chargers connect to wss://HOST:9000/ocpp/<CP id>; docs/ocpp.md)
Create a driver:        ev-central drivers add D1 --secret-file d1.secret
List drivers:           ev-central drivers list

Secrets (environment only):
  EV_OPERATOR_TOKEN  (or EV_OPERATOR_TOKEN_FILE)  required; API_Central writes and private
                     reads (drivers, sessions, stats, audit, drivers' ids) need it
  EV_AUDIT_KEY       (or EV_AUDIT_KEY_FILE)  the audit chain's HMAC keys, separated by white
                     space, the first signs; the same for Registry, Central and
                     'drivers add'; unset: DATA_DIR/audit.key, made on first start
  EV_WEATHER_TOKEN   (or EV_WEATHER_TOKEN_FILE)  optional; the weather office's own
                     token: it may raise and clear weather alerts and post readings,
                     nothing else (unset: only the operator token may)

API_Central listens on 127.0.0.1 unless --api says otherwise: its public reads (charge
points, prices, states, weather) are safe to expose; put it behind TLS if it leaves the
host (docs/security.md).

Console commands (type them while it runs): status, stop CP|all, resume CP|all,
revoke CP, price CP EUR, alert LOCATION, clear LOCATION, quit."""


def _parse_kw(text: str) -> Decimal:
    value = Decimal(str(parse_positive_float(text)))
    if not value.is_finite():
        raise ValueError("must be a finite number of kW")
    return value


def heartbeat_timing(interval: float | None, timeout: float | None) -> tuple[float, float]:
    """The heart-beat interval and timeout, each defaulting from the other.

    Raises:
        ConfigError: a timeout no longer than the interval (every CP would flap).
    """
    if interval is None:
        interval = HEARTBEAT_INTERVAL if timeout is None else timeout / HEARTBEATS_MISSED
    if timeout is None:
        timeout = interval * HEARTBEATS_MISSED
    if timeout <= interval:
        raise ConfigError(
            "EV_HEARTBEAT_TIMEOUT",
            f"{timeout:g} s is not longer than the heart-beat interval ({interval:g} s); "
            f"give at least {HEARTBEATS_MISSED} intervals",
        )
    return interval, timeout


def _common(parser: ServiceParser) -> None:
    parser.data_dir_option("where the SQLite database lives when no database URL is given")
    parser.database_url_option()
    parser.log_level_option()
    parser.option(
        "--scrypt-n",
        env="EV_SCRYPT_N",
        default=2**14,
        parse=parse_positive_int,
        help="scrypt cost of new secrets (power of two)",
    )


def _serve(argv: list[str]) -> int:
    parser = ServiceParser(PROG, DESCRIPTION)
    parser.option(
        "--listen",
        env="EV_CENTRAL_LISTEN",
        default=parse_host_port("0.0.0.0:7000"),
        parse=parse_host_port,
        help="TCP address for CPs and drivers",
    )
    parser.option(
        "--api",
        env="EV_CENTRAL_API_LISTEN",
        default=parse_host_port("127.0.0.1:8001"),
        parse=parse_host_port,
        help="HTTP address of API_Central (0.0.0.0:8001 to serve other hosts)",
    )
    parser.option(
        "--audit-checkpoint-interval",
        env="EV_AUDIT_CHECKPOINT_INTERVAL",
        default=60.0,
        parse=parse_positive_float,
        metavar="S",
        help="seconds between signed checkpoints of the audit chain's head, published to "
        "Kafka so a truncated chain is noticed",
    )
    parser.option(
        "--advertise",
        env="EV_CENTRAL_ADVERTISE",
        default=None,
        parse=parse_host_port,
        metavar="HOST:PORT",
        help="with several Centrals on one PostgreSQL: the address CPs reach this one at, "
        "sent to a CP that logs in elsewhere (default: --listen, with the host name when "
        "it listens on every interface); see docs/deployment.md",
    )
    parser.option(
        "--workers",
        env="EV_CENTRAL_WORKERS",
        default=1,
        parse=parse_positive_int,
        metavar="N",
        help="run N Central processes on this machine, worker i on --listen PORT+i and "
        "--api PORT+i (PostgreSQL only; give CPs and drivers every address)",
    )
    parser.option(
        "--kafka-bootstrap",
        env="EV_KAFKA_BOOTSTRAP",
        default=None,
        help="Kafka bootstrap servers for the event stream (unset: outbox only)",
    )
    parser.option(
        "--heartbeat-interval",
        env="EV_HEARTBEAT_INTERVAL",
        default=None,
        parse=parse_positive_float,
        metavar="S",
        help=f"seconds between a monitor's heart-beats; Central tells every monitor at login "
        f"(default {HEARTBEAT_INTERVAL:g}, or a third of --heartbeat-timeout)",
    )
    parser.option(
        "--heartbeat-timeout",
        env="EV_HEARTBEAT_TIMEOUT",
        default=None,
        parse=parse_positive_float,
        metavar="S",
        help=f"seconds of monitor silence before a CP is DISCONNECTED "
        f"(default {HEARTBEATS_MISSED} heart-beat intervals)",
    )
    parser.option(
        "--plug-timeout",
        env="EV_PLUG_TIMEOUT",
        default=120.0,
        parse=parse_positive_float,
        help="seconds an authorised charge waits for the vehicle",
    )
    parser.option(
        "--max-kw",
        env="EV_CP_MAX_KW",
        default=DEFAULT_MAX_KW,
        parse=_parse_kw,
        metavar="KW",
        help="highest power any charge point supplies; energy reports above what it could "
        "deliver since the supply began (plus a minute) are refused",
    )
    parser.option(
        "--ocpp",
        env="EV_CENTRAL_OCPP_LISTEN",
        default=None,
        parse=parse_host_port,
        metavar="HOST:PORT",
        help="also accept OCPP 1.6J chargers on this address, at "
        "ws://HOST:PORT/ocpp/<CP id> (unset: off; see docs/ocpp.md)",
    )
    parser.option(
        "--ocpp-tls-cert",
        env="EV_OCPP_TLS_CERT",
        default=None,
        parse=Path,
        metavar="PEM",
        help="serve OCPP over TLS (wss://, security profile 2) with this certificate "
        "chain; needs --ocpp-tls-key",
    )
    parser.option(
        "--ocpp-tls-key",
        env="EV_OCPP_TLS_KEY",
        default=None,
        parse=Path,
        metavar="PEM",
        help="private key of --ocpp-tls-cert",
    )
    _common(parser)
    parser.add_argument(
        "--no-console", action="store_true", help="do not read operator commands from stdin"
    )
    args = parser.parse_args(argv)
    setup_logging("central", args.log_level)
    url = args.database_url or database_url(args.data_dir)
    check_workers(args.workers, url, args.listen, args.api)
    token = read_secret("EV_OPERATOR_TOKEN")
    assert token is not None
    weather_token = read_secret("EV_WEATHER_TOKEN", required=False)
    if weather_token is not None and weather_token == token:
        raise ConfigError("EV_WEATHER_TOKEN", "must differ from EV_OPERATOR_TOKEN (it grants less)")
    ocpp_tls = _ocpp_tls(args.ocpp, args.ocpp_tls_cert, args.ocpp_tls_key)
    interval, timeout = heartbeat_timing(args.heartbeat_interval, args.heartbeat_timeout)
    if args.workers > 1:
        return run_workers(argv, args.workers, args.listen, args.api, args.advertise)
    settings = CentralSettings(
        listen=args.listen,
        api=args.api,
        database_url=url,
        operator_token=token,
        weather_token=weather_token,
        kafka_bootstrap=args.kafka_bootstrap,
        heartbeat_interval=interval,
        heartbeat_timeout=timeout,
        plug_timeout=args.plug_timeout,
        max_kw=args.max_kw,
        scrypt=ScryptParams(n=args.scrypt_n),
        console=not args.no_console,
        data_dir=args.data_dir,
        audit_keys=load_audit_keys(args.data_dir),
        audit_checkpoint_interval=args.audit_checkpoint_interval,
        ocpp=args.ocpp,
        ocpp_tls=ocpp_tls,
        advertise=args.advertise,
    )
    return run_central(settings)


def _ocpp_tls(
    listen: HostPort | None, cert: Path | None, key: Path | None
) -> tuple[Path, Path] | None:
    """The OCPP TLS pair, checked now so a bad file is one clear line, not a traceback."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("--ocpp-tls-cert/--ocpp-tls-key", "give both, or neither")
    if listen is None:
        raise ConfigError("--ocpp-tls-cert", "needs --ocpp HOST:PORT (the OCPP listener)")
    from central.ocpp import tls_context

    tls_context(cert, key)
    return cert, key


def _drivers(argv: list[str]) -> int:
    parser = ServiceParser(f"{PROG} drivers", "Manage driver accounts.")
    _common(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create a driver and print its secret once")
    add.add_argument("driver_id", metavar="ID")
    add.add_argument(
        "--secret-file", type=Path, help="also write the secret to this file (mode 0600)"
    )
    sub.add_parser("list", help="list driver accounts")
    args = parser.parse_args(argv)
    setup_logging("central", "WARNING")
    url = args.database_url or database_url(args.data_dir)
    if args.action == "add":
        keys = load_audit_keys(args.data_dir)
        secret = add_driver(url, args.driver_id, ScryptParams(n=args.scrypt_n), keys)
        if args.secret_file:
            args.secret_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(args.secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secret + "\n")
        print(f"driver {args.driver_id} created; its secret (shown once):")
        print(secret)
        return 0
    for row in list_drivers(url):
        print(f"{row['id']}\t{row['created_at']}\t{'disabled' if row['disabled'] else 'active'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = argv_or_default(argv)
    if args and args[0] == "drivers":
        return run_main(f"{PROG} drivers", lambda: _drivers(args[1:]))
    return run_main(PROG, lambda: _serve(args))


if __name__ == "__main__":
    sys.exit(main())
