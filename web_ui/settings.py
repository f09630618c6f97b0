"""``ev-web`` settings: flags, ``EV_*`` environment variables and secrets, validated at start."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from common.config import (
    HostPort,
    ServiceParser,
    parse_bool,
    parse_host_port,
    parse_http_url,
    parse_positive_float,
    parse_positive_int,
    read_secret,
)
from common.errors import ConfigError

__all__ = ["PROG", "WebSettings", "parse_settings"]

PROG = "ev-web"
_DESCRIPTION = """\
EVCharging web dashboard: the live board (Server-Sent Events fed from Kafka), revenue and
energy, the audit log, and the operator area.

Run it:   EV_OPERATOR_TOKEN=... ev-web --central-api http://127.0.0.1:8001 \\
              --kafka-bootstrap 127.0.0.1:9092

Secrets (environment or *_FILE, never flags):
  EV_OPERATOR_TOKEN      operators log in with it; API_Central writes use it (unset:
                         the operator area is off)
  EV_WEB_SECRET_KEY      signs session cookies (unset: a random key, so sessions end
                         when the process restarts)
  EV_PROVISIONING_TOKEN  registers CPs at the Registry (unset: the operator token)
"""


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    """Everything ``ev-web`` needs. Secrets are kept out of ``repr``."""

    listen: HostPort = field(default_factory=lambda: HostPort("0.0.0.0", 8000))
    central_api: str = "http://127.0.0.1:8001"
    kafka_bootstrap: str | None = None
    registry_url: str | None = None
    registry_ca: Path | None = None
    operator_token: str | None = field(default=None, repr=False)
    provisioning_token: str | None = field(default=None, repr=False)
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32), repr=False)
    cookie_secure: bool = False
    resync_interval: float = 10.0
    health_interval: float = 2.0
    frame_interval: float = 0.25
    threads: int = 64
    log_level: str = "INFO"

    @property
    def registry_token(self) -> str | None:
        return self.provisioning_token or self.operator_token


def _parser(env: Mapping[str, str]) -> ServiceParser:
    parser = ServiceParser(PROG, _DESCRIPTION, env=env)
    parser.option(
        "--listen",
        env="EV_WEB_LISTEN",
        default=HostPort("0.0.0.0", 8000),
        parse=parse_host_port,
        help="HTTP address of the dashboard (port 0: any free port)",
    )
    parser.option(
        "--central-api",
        env="EV_CENTRAL_API",
        default="http://127.0.0.1:8001",
        parse=parse_http_url,
        help="base URL of API_Central",
    )
    parser.option(
        "--kafka-bootstrap",
        env="EV_KAFKA_BOOTSTRAP",
        default=None,
        help="Kafka bootstrap servers (unset: no live events, snapshots only)",
    )
    parser.option(
        "--registry-url",
        env="EV_REGISTRY_URL",
        default=None,
        parse=parse_http_url,
        help="base URL of the Registry, for the register form (unset: form off)",
    )
    parser.option(
        "--registry-ca",
        env="EV_REGISTRY_CA",
        default=None,
        parse=Path,
        help="CA certificate (PEM) that signed the Registry's certificate",
    )
    parser.option(
        "--cookie-secure",
        env="EV_WEB_COOKIE_SECURE",
        default=False,
        parse=parse_bool,
        help="send the session cookie over HTTPS only (set behind a TLS proxy)",
    )
    parser.option(
        "--resync-interval",
        env="EV_WEB_RESYNC_INTERVAL",
        default=10.0,
        parse=parse_positive_float,
        help="seconds between full snapshots from API_Central",
    )
    parser.option(
        "--health-interval",
        env="EV_WEB_HEALTH_INTERVAL",
        default=2.0,
        parse=parse_positive_float,
        help="seconds between checks that Central and the broker answer",
    )
    parser.option(
        "--frame-interval",
        env="EV_WEB_FRAME_INTERVAL",
        default=0.25,
        parse=parse_positive_float,
        help="seconds between two live updates of a page, at most (changes in between are "
        "coalesced: each page gets the latest state of what it shows)",
    )
    parser.option(
        "--threads",
        env="EV_WEB_THREADS",
        default=64,
        parse=parse_positive_int,
        help="HTTP worker threads (each open page's live stream holds one)",
    )
    parser.log_level_option()
    return parser


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> WebSettings:
    """Validate flags and environment; raises :class:`ConfigError` with a clear message."""
    env = os.environ if env is None else env
    args = _parser(env).parse_args(list(argv))
    if args.threads < 8:
        raise ConfigError("--threads", "at least 8 (open pages hold one thread each)")
    if args.registry_ca is not None and not args.registry_ca.is_file():
        raise ConfigError("--registry-ca", f"{args.registry_ca} is not a readable file")
    if args.registry_url and args.registry_url.startswith("http://"):
        raise ConfigError("--registry-url", "the Registry is served over HTTPS (https://...)")
    operator_token = read_secret("EV_OPERATOR_TOKEN", env)
    secret_key = read_secret("EV_WEB_SECRET_KEY", env)
    if secret_key is not None and len(secret_key) < 16:
        raise ConfigError("EV_WEB_SECRET_KEY", "use at least 16 random characters")
    return WebSettings(
        listen=args.listen,
        central_api=args.central_api,
        kafka_bootstrap=args.kafka_bootstrap or None,
        registry_url=args.registry_url,
        registry_ca=args.registry_ca,
        operator_token=operator_token,
        provisioning_token=read_secret("EV_PROVISIONING_TOKEN", env),
        secret_key=secret_key or secrets.token_hex(32),
        cookie_secure=args.cookie_secure,
        resync_interval=args.resync_interval,
        health_interval=args.health_interval,
        frame_interval=args.frame_interval,
        threads=args.threads,
        log_level=args.log_level,
    )
