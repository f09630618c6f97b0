"""``ev-cp-engine`` settings: flags > ``EV_*`` environment > defaults. Pure parsing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.chargepoint.options import (
    DEFAULT_ENGINE,
    add_central_option,
    add_id_option,
    add_supply_options,
    cp_home,
)
from common.chargepoint.pairing import add_pairing_key_option
from common.config import Centrals, HostPort, ServiceParser, parse_host_port, parse_positive_float

__all__ = ["PROG", "EngineSettings", "parse_settings"]

PROG = "ev-cp-engine"
_DESCRIPTION = """EVCharging charge-point engine: the charger itself.

It serves its monitor's link (health checks, the session key), connects to Central
with the key the monitor hands over, supplies authorised vehicles and sends telemetry
every second. Keys or lines on stdin: p plug, u unplug, k KO, o OK, r request a charge,
s status, q quit. Energy is journalled on disk, so a crash never loses a supply."""


@dataclass(frozen=True)
class EngineSettings:
    cp_id: str
    listen: HostPort
    central: Centrals
    auto_plug: bool
    target_kwh: float | None
    kw: float
    speed: float
    data_dir: Path
    pairing_key_file: Path
    journal_file: Path
    log_level: str


def build_parser(env: Mapping[str, str]) -> ServiceParser:
    p = ServiceParser(PROG, _DESCRIPTION, env)
    add_id_option(p)
    p.option(
        "--listen",
        env="EV_CP_ENGINE_LISTEN",
        default=DEFAULT_ENGINE,
        parse=parse_host_port,
        metavar="HOST:PORT",
        help="address the monitor connects to",
    )
    add_central_option(p)
    p.flag(
        "--auto-plug",
        env="EV_CP_AUTO_PLUG",
        help="plug a vehicle in by itself a moment after each authorisation",
    )
    p.option(
        "--kwh",
        env="EV_CP_TARGET_KWH",
        default=None,
        parse=parse_positive_float,
        metavar="KWH",
        help="energy to deliver when a request names no target (default: until unplugged)",
    )
    add_supply_options(p)
    p.data_dir_option("where the journal and the pairing key live")
    add_pairing_key_option(p, "monitor")
    p.log_level_option("WARNING")
    return p


def parse_settings(argv: Sequence[str], env: Mapping[str, str]) -> EngineSettings:
    """Raises ConfigError (one line) for anything wrong."""
    ns = build_parser(env).parse_args(list(argv))
    cp_id, home = cp_home(ns)
    return EngineSettings(
        cp_id=cp_id,
        listen=ns.listen,
        central=ns.central,
        auto_plug=ns.auto_plug,
        target_kwh=ns.kwh,
        kw=ns.kw,
        speed=ns.speed,
        data_dir=ns.data_dir,
        pairing_key_file=ns.pairing_key_file or home / "pairing.key",
        journal_file=home / "journal.json",
        log_level=ns.log_level,
    )
