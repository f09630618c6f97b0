"""``ev-ocpp-sim`` settings: flags > ``EV_*`` environment > defaults. Pure parsing.

The charge-point options (id, location, Registry, power and speed) are the engine's
and the monitor's, from :mod:`common.chargepoint.options`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.chargepoint.options import (
    add_id_option,
    add_location_option,
    add_registry_options,
    add_supply_options,
    cp_home,
)
from common.config import ServiceParser, parse_positive_float

__all__ = ["PROG", "SimSettings", "parse_settings"]

PROG = "ev-ocpp-sim"
DESCRIPTION = """A simulated OCPP 1.6J charge point (one connector), built on the `ocpp`
package's ChargePoint: it connects to ws[s]://.../ocpp/<ID> with HTTP Basic auth
(security profile 1, or 2 over wss:// with --ca), boots, reports its status, takes
remote starts and stops and availability changes, and meters every second.

Run it:     ev-ocpp-sim --id CP9 --url ws://127.0.0.1:9000/ocpp --secret-file cp9.secret
Register:   EV_PROVISIONING_TOKEN=... ev-ocpp-sim --id CP9 --location Madrid --auto \\
                --registry https://127.0.0.1:8443 --registry-ca ca.pem --url ..."""


@dataclass(frozen=True, kw_only=True)
class SimSettings:
    cp_id: str
    url: str  # Central's OCPP endpoint; the charger connects to URL/ID
    ca: Path | None
    location: str | None
    registry: str
    registry_ca: Path | None
    secret_file: Path
    auto: bool
    kw: float
    speed: float
    max_session: float
    log_level: str


def _parse_url(text: str) -> str:
    url = text.strip().rstrip("/")
    if not url.startswith(("ws://", "wss://")):
        raise ValueError("expected ws://HOST:PORT/ocpp or wss://HOST:PORT/ocpp")
    return url


def _parser(env: Mapping[str, str]) -> ServiceParser:
    parser = ServiceParser(PROG, DESCRIPTION, env)
    add_id_option(parser)
    parser.option(
        "--url",
        env="EV_CENTRAL_OCPP_URL",
        default="ws://127.0.0.1:9000/ocpp",
        parse=_parse_url,
        metavar="URL",
        help="Central's OCPP endpoint; the charger connects to URL/ID",
    )
    parser.option(
        "--ca",
        env="EV_OCPP_CA",
        default=None,
        parse=Path,
        metavar="PEM",
        help="CA file Central's wss:// certificate must chain to (default: system CAs)",
    )
    add_location_option(parser)
    add_registry_options(parser)
    parser.flag(
        "--auto", env="EV_CP_AUTO", help="register at the Registry first if there is no secret"
    )
    add_supply_options(parser)
    parser.option(
        "--max-session",
        env="EV_CP_MAX_SESSION",
        default=4 * 3600.0,
        parse=parse_positive_float,
        metavar="S",
        help="simulated seconds after which the vehicle leaves by itself",
    )
    parser.data_dir_option("where the secret lives")
    parser.log_level_option("WARNING")
    return parser


def parse_settings(argv: Sequence[str], env: Mapping[str, str] | None = None) -> SimSettings:
    """Raises ConfigError (one line) for anything wrong."""
    env = os.environ if env is None else env
    args = _parser(env).parse_args(list(argv))
    cp_id, home = cp_home(args)
    return SimSettings(
        cp_id=cp_id,
        url=args.url,
        ca=args.ca,
        location=args.location,
        registry=args.registry,
        registry_ca=args.registry_ca,
        secret_file=args.secret_file or home / "secret",
        auto=args.auto,
        kw=args.kw,
        speed=args.speed,
        max_session=args.max_session,
        log_level=args.log_level,
    )
