"""``ev-cp-monitor`` settings: flags > ``EV_*`` environment > defaults. Pure parsing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.chargepoint.options import (
    DEFAULT_ENGINE,
    add_central_option,
    add_id_option,
    add_location_option,
    add_registry_options,
    cp_home,
)
from common.chargepoint.pairing import add_pairing_key_option
from common.config import Centrals, HostPort, ServiceParser, parse_host_port, parse_positive_float
from common.errors import ConfigError

__all__ = ["HEARTBEAT_INTERVAL", "PROG", "MonitorSettings", "parse_settings"]

HEARTBEAT_INTERVAL = 5.0  # Central's default too (central.chargepoints)

PROG = "ev-cp-monitor"
_DESCRIPTION = """EVCharging charge-point monitor: its engine's supervisor and its voice
towards the Registry and Central.

It health-checks the engine every second, registers the CP with the Registry (HTTPS),
authenticates with Central, hands the session key to the engine over their encrypted
link and heart-beats to Central. Keys or lines on stdin: r register, d deregister,
a authenticate, e re-authenticate, s status, k engine KO, o engine OK,
h [SECONDS] swallow health answers, l [SECONDS] lose the Central link, q quit.
The provisioning token for registering: EV_PROVISIONING_TOKEN (or _FILE)."""


@dataclass(frozen=True)
class MonitorSettings:
    cp_id: str
    location: str | None
    engine: HostPort
    central: Centrals
    registry: str
    registry_ca: Path | None
    secret_file: Path
    data_dir: Path
    pairing_key_file: Path
    auto: bool
    log_level: str
    heartbeat_interval: float = HEARTBEAT_INTERVAL


def build_parser(env: Mapping[str, str]) -> ServiceParser:
    p = ServiceParser(PROG, _DESCRIPTION, env)
    add_id_option(p)
    add_location_option(p)
    p.option(
        "--engine",
        env="EV_CP_ENGINE_ADDR",
        default=DEFAULT_ENGINE,
        parse=parse_host_port,
        metavar="HOST:PORT",
        help="the engine's monitor link",
    )
    add_central_option(p)
    add_registry_options(p)
    p.data_dir_option("where the secret and the pairing key live")
    add_pairing_key_option(p, "engine")
    p.flag(
        "--auto",
        env="EV_CP_AUTO",
        help="unattended: register if there is no secret file, authenticate, keep everything up",
    )
    p.option(
        "--heartbeat-interval",
        env="EV_HEARTBEAT_INTERVAL",
        default=HEARTBEAT_INTERVAL,
        parse=parse_positive_float,
        metavar="S",
        help="seconds between heart-beats to Central until Central says otherwise "
        f"(it tells every monitor at login; default {HEARTBEAT_INTERVAL:g})",
    )
    p.log_level_option("WARNING")
    return p


def parse_settings(argv: Sequence[str], env: Mapping[str, str]) -> MonitorSettings:
    """Raises ConfigError (one line) for anything wrong."""
    ns = build_parser(env).parse_args(list(argv))
    cp_id, home = cp_home(ns)
    if ns.registry_ca is not None and not ns.registry_ca.is_file():
        raise ConfigError("--registry-ca", f"{ns.registry_ca} is not a file")
    return MonitorSettings(
        cp_id=cp_id,
        location=ns.location,
        engine=ns.engine,
        central=ns.central,
        registry=ns.registry,
        registry_ca=ns.registry_ca,
        secret_file=ns.secret_file or home / "secret",
        data_dir=ns.data_dir,
        pairing_key_file=ns.pairing_key_file or home / "pairing.key",
        auto=ns.auto,
        log_level=ns.log_level,
        heartbeat_interval=ns.heartbeat_interval,
    )
