"""``ev-registry`` settings: flags, ``EV_*`` environment variables, secrets. No I/O but reading.

:func:`parse_settings` validates everything before the service touches the network or
the database, so a bad setting is one clear line (exit code 2).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from common.config import (
    HostPort,
    ServiceParser,
    default_data_dir,
    parse_host_port,
    parse_positive_float,
    parse_positive_int,
    read_secret,
    require_secret,
)
from common.db import database_url
from common.errors import ConfigError
from common.protocol.keys import DEFAULT_PARAMS, ScryptParams
from registry.tls import parse_san
from registry.validation import parse_price

__all__ = ["PROG", "Settings", "build_parser", "parse_settings"]

PROG = "ev-registry"
_DESCRIPTION = """\
Registry: charge-point registration and credentials over HTTPS.

On first start it creates a private CA and a server certificate under
DATA_DIR/registry-tls/ and prints the CA file's path (DATA_DIR/registry-tls/ca.pem):
give that file to clients (EV_REGISTRY_CA). Secrets, never flags:
  EV_PROVISIONING_TOKEN (or EV_PROVISIONING_TOKEN_FILE)  required; registers CPs
  EV_OPERATOR_TOKEN     (or EV_OPERATOR_TOKEN_FILE)      optional; lists, deregisters,
                                                         rotates any CP
  EV_AUDIT_KEY          (or EV_AUDIT_KEY_FILE)           the audit chain's HMAC keys, the
                                                         same as Central's; unset:
                                                         DATA_DIR/audit.key, made once
"""
_EPILOG = """\
endpoints (JSON over HTTPS; see docs/registry.md):
  POST   /api/chargepoints              {id, location, price?}  provisioning token -> 201 + secret
  GET    /api/chargepoints/ID           public status
  GET    /api/chargepoints              operator token
  DELETE /api/chargepoints/ID           the CP's secret or operator token -> 204
  POST   /api/chargepoints/ID/rotate    the CP's secret or operator token -> new secret
  POST   /api/verify                    {id, secret} -> 200 / 401 / 429
  GET    /api/health
"""
DEFAULT_LISTEN = HostPort("0.0.0.0", 8443)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the registry needs to start. Tokens are kept out of ``repr``."""

    provisioning_token: str = field(repr=False)
    operator_token: str | None = field(default=None, repr=False)
    listen: HostPort = DEFAULT_LISTEN
    data_dir: Path = field(default_factory=default_data_dir)
    database_url: str = ""
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_san: tuple[str, ...] = ()
    default_price: Decimal = Decimal("0.30")
    scrypt: ScryptParams = DEFAULT_PARAMS
    max_failures_per_id: int = 5
    max_failures_per_ip: int = 20
    failure_window: float = 60.0
    threads: int = 16
    concurrency_per_ip: int = 4
    head_timeout: float = 10.0
    kafka_bootstrap: str | None = None
    log_level: str = "INFO"


def _scrypt_n(text: str) -> int:
    n = int(text)
    ScryptParams(n=n)  # raises ValueError with the accepted range
    return n


def _price(text: str) -> Decimal:
    return parse_price(text)


def build_parser(env: Mapping[str, str]) -> ServiceParser:
    """The ``ev-registry`` command line (environment fallbacks read from ``env``)."""
    p = ServiceParser(PROG, _DESCRIPTION, env)
    p.epilog = _EPILOG
    p.option(
        "--listen",
        env="EV_REGISTRY_LISTEN",
        default=DEFAULT_LISTEN,
        parse=parse_host_port,
        metavar="HOST:PORT",
        help="address to serve HTTPS on (port 0: any free port)",
    )
    p.data_dir_option("where the generated TLS files (and the SQLite database) live")
    p.database_url_option()
    p.option(
        "--tls-cert",
        env="EV_REGISTRY_TLS_CERT",
        default=None,
        parse=Path,
        metavar="PEM",
        help="serve this certificate (chain) instead of generating one; needs --tls-key",
    )
    p.option(
        "--tls-key",
        env="EV_REGISTRY_TLS_KEY",
        default=None,
        parse=Path,
        metavar="PEM",
        help="private key of --tls-cert",
    )
    p.option(
        "--tls-san",
        env="EV_REGISTRY_TLS_SAN",
        default=None,
        parse=parse_san,
        metavar="NAMES",
        help="extra host names/IP addresses (comma-separated) for the generated certificate, "
        "besides localhost, 127.0.0.1 and ::1",
    )
    p.option(
        "--default-price",
        env="EV_DEFAULT_PRICE",
        default=Decimal("0.30"),
        parse=_price,
        metavar="EUR",
        help="price in EUR/kWh of a charge point registered without one",
    )
    p.option(
        "--max-failures-per-id",
        env="EV_REGISTRY_MAX_FAILURES_PER_ID",
        default=5,
        parse=parse_positive_int,
        metavar="N",
        help="failed authentications per charge-point id per window before 429",
    )
    p.option(
        "--max-failures-per-ip",
        env="EV_REGISTRY_MAX_FAILURES_PER_IP",
        default=20,
        parse=parse_positive_int,
        metavar="N",
        help="failed authentications per client address per window before 429",
    )
    p.option(
        "--failure-window",
        env="EV_REGISTRY_FAILURE_WINDOW",
        default=60.0,
        parse=parse_positive_float,
        metavar="SECONDS",
        help="length of the sliding window for failed authentications",
    )
    p.option(
        "--threads",
        env="EV_REGISTRY_THREADS",
        default=16,
        parse=parse_positive_int,
        metavar="N",
        help="HTTPS worker threads",
    )
    p.option(
        "--concurrency-per-ip",
        env="EV_REGISTRY_CONCURRENCY_PER_IP",
        default=4,
        parse=parse_positive_int,
        metavar="N",
        help="requests of one client address served at once; its further connections wait "
        "their turn (up to 64, then refused). Keep it well below --threads, so a few "
        "slow clients cannot hold every thread",
    )
    p.option(
        "--head-timeout",
        env="EV_REGISTRY_HEAD_TIMEOUT",
        default=10.0,
        parse=parse_positive_float,
        metavar="SECONDS",
        help="time a connection has for its TLS handshake and request headers (counted "
        "from when it is accepted or, kept alive, sends again), then it is closed",
    )
    p.option(
        "--kafka-bootstrap",
        env="EV_KAFKA_BOOTSTRAP",
        default=None,
        metavar="HOST:PORT",
        help="Kafka bootstrap servers: publish the outbox there (unset: events stay in "
        "the outbox for another service's relay)",
    )
    p.option(
        "--scrypt-n",
        env="EV_SCRYPT_N",
        default=2**14,
        parse=_scrypt_n,
        metavar="N",
        help="advanced: scrypt cost (power of two) for new secrets; lower it only in tests",
    )
    p.log_level_option()
    return p


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> Settings:
    """Parse flags and environment into :class:`Settings`.

    Raises:
        ConfigError: anything missing or malformed, in one line.
    """
    env = os.environ if env is None else env
    args: argparse.Namespace = build_parser(env).parse_args(list(argv))
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert/--tls-key", "give both, or neither to generate them")
    provisioning = require_secret("EV_PROVISIONING_TOKEN", env)
    operator = read_secret("EV_OPERATOR_TOKEN", env)
    data_dir = Path(args.data_dir)
    return Settings(
        provisioning_token=provisioning,
        operator_token=operator,
        listen=args.listen,
        data_dir=data_dir,
        database_url=args.database_url or database_url(data_dir, env={}),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_san=tuple(args.tls_san or ()),
        default_price=args.default_price,
        scrypt=ScryptParams(n=args.scrypt_n),
        max_failures_per_id=args.max_failures_per_id,
        max_failures_per_ip=args.max_failures_per_ip,
        failure_window=args.failure_window,
        threads=args.threads,
        concurrency_per_ip=args.concurrency_per_ip,
        head_timeout=args.head_timeout,
        kafka_bootstrap=args.kafka_bootstrap or None,
        log_level=args.log_level,
    )
