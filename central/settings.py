"""``ev-central`` settings: flags, ``EV_*`` environment variables, secrets. No I/O but reading.

:func:`parse_settings` (serving) and :func:`parse_drivers_settings` (``ev-central
drivers``) validate everything before Central touches the network or the database, so
a bad setting is one clear line (exit code 2). The audit keys are not read here: made
on first start, they are written, and the log must be set up first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from central.chargepoints import HEARTBEAT_INTERVAL, HEARTBEATS_MISSED
from central.energy import DEFAULT_MAX_KW
from central.workers import check_workers
from common.config import (
    HostPort,
    ServiceParser,
    parse_host_port,
    parse_positive_float,
    parse_positive_int,
    read_secret,
    require_secret,
)
from common.db import database_url
from common.errors import ConfigError
from common.protocol.keys import ScryptParams

__all__ = [
    "PROG",
    "DriversSettings",
    "Settings",
    "heartbeat_timing",
    "parse_drivers_settings",
    "parse_settings",
]

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


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything ``ev-central`` needs to serve. Tokens are kept out of ``repr``."""

    listen: HostPort
    api: HostPort
    database_url: str
    operator_token: str = field(repr=False)
    weather_token: str | None = field(repr=False)
    kafka_bootstrap: str | None
    heartbeat_interval: float
    heartbeat_timeout: float
    plug_timeout: float
    max_kw: Decimal
    scrypt: ScryptParams
    console: bool
    data_dir: Path
    audit_checkpoint_interval: float
    ocpp: HostPort | None
    ocpp_tls: tuple[Path, Path] | None
    advertise: HostPort | None
    workers: int
    log_level: str


@dataclass(frozen=True, kw_only=True)
class DriversSettings:
    """``ev-central drivers add ID [--secret-file FILE]`` or ``ev-central drivers list``."""

    add: str | None  # the driver to create; None: list them
    secret_file: Path | None
    database_url: str
    data_dir: Path
    scrypt: ScryptParams


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


def _common_options(parser: ServiceParser) -> None:
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


def _parser(env: Mapping[str, str]) -> ServiceParser:
    parser = ServiceParser(PROG, DESCRIPTION, env)
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
    _common_options(parser)
    parser.add_argument(
        "--no-console", action="store_true", help="do not read operator commands from stdin"
    )
    return parser


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """Parse flags, environment and secrets into :class:`Settings`.

    Raises:
        ConfigError: anything missing or malformed, in one line.
    """
    env = os.environ if env is None else env
    args = _parser(env).parse_args(list(argv))
    url = args.database_url or database_url(args.data_dir, env)
    check_workers(args.workers, url, args.listen, args.api)
    token = require_secret("EV_OPERATOR_TOKEN", env)
    weather_token = read_secret("EV_WEATHER_TOKEN", env)
    if weather_token is not None and weather_token == token:
        raise ConfigError("EV_WEATHER_TOKEN", "must differ from EV_OPERATOR_TOKEN (it grants less)")
    ocpp_tls = _ocpp_tls(args.ocpp, args.ocpp_tls_cert, args.ocpp_tls_key)
    interval, timeout = heartbeat_timing(args.heartbeat_interval, args.heartbeat_timeout)
    return Settings(
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
        audit_checkpoint_interval=args.audit_checkpoint_interval,
        ocpp=args.ocpp,
        ocpp_tls=ocpp_tls,
        advertise=args.advertise,
        workers=args.workers,
        log_level=args.log_level,
    )


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


def parse_drivers_settings(
    argv: Sequence[str], env: Mapping[str, str] | None = None
) -> DriversSettings:
    """Parse ``ev-central drivers ...`` (the words after ``drivers``).

    Raises:
        ConfigError: anything missing or malformed, in one line.
    """
    env = os.environ if env is None else env
    parser = ServiceParser(f"{PROG} drivers", "Manage driver accounts.", env)
    _common_options(parser)
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = sub.add_parser("add", help="create a driver and print its secret once")
    add.add_argument("driver_id", metavar="ID")
    add.add_argument(
        "--secret-file", type=Path, help="also write the secret to this file (mode 0600)"
    )
    sub.add_parser("list", help="list driver accounts")
    args = parser.parse_args(list(argv))
    return DriversSettings(
        add=args.driver_id if args.action == "add" else None,
        secret_file=getattr(args, "secret_file", None),
        database_url=args.database_url or database_url(args.data_dir, env),
        data_dir=args.data_dir,
        scrypt=ScryptParams(n=args.scrypt_n),
    )
