"""``ev-cp-engine`` settings: flags > ``EV_*`` environment > defaults. Pure parsing."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.config import (
    Centrals,
    HostPort,
    ServiceParser,
    parse_centrals,
    parse_host_port,
    parse_positive_float,
)
from common.errors import ConfigError
from common.protocol.handshake import valid_principal_id
from cp_engine.pairing import add_pairing_key_option

__all__ = [
    "DEFAULT_CENTRAL",
    "DEFAULT_ENGINE",
    "PROG",
    "EngineSettings",
    "add_central_option",
    "add_id_option",
    "cp_dir",
    "parse_cp_id",
    "parse_settings",
]

PROG = "ev-cp-engine"
DEFAULT_ENGINE = HostPort("127.0.0.1", 7100)
DEFAULT_CENTRAL = Centrals((HostPort("127.0.0.1", 7000),))
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


def parse_cp_id(text: str) -> str:
    if not valid_principal_id(text):
        raise ValueError("1-32 letters, digits, '-' or '_'")
    return text


def cp_dir(data_dir: Path, cp_id: str) -> Path:
    """Where one charge point keeps its files (pairing key, secret, journal)."""
    return data_dir / f"cp-{cp_id}"


def add_id_option(p: ServiceParser) -> None:
    """``--id`` / ``EV_CP_ID``, the same for the engine and its monitor."""
    p.option(
        "--id",
        env="EV_CP_ID",
        default=None,
        parse=parse_cp_id,
        metavar="CP",
        help="this charge point's id (required)",
    )


def add_central_option(p: ServiceParser) -> None:
    """``--central`` / ``EV_CENTRAL_ADDR``, the same for the engine and its monitor."""
    p.option(
        "--central",
        env="EV_CENTRAL_ADDR",
        default=DEFAULT_CENTRAL,
        parse=parse_centrals,
        metavar="HOST:PORT[,HOST:PORT...]",
        help="Central's TCP address; with several Centrals, all of them (each CP is served "
        "by one, and moves to another if it fails)",
    )


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
    p.option(
        "--kw",
        env="EV_CP_KW",
        default=11.0,
        parse=parse_positive_float,
        metavar="KW",
        help="charging power",
    )
    p.option(
        "--speed",
        env="EV_CP_SPEED",
        default=1.0,
        parse=parse_positive_float,
        metavar="X",
        help="simulated seconds per real second",
    )
    p.data_dir_option("where the journal and the pairing key live")
    add_pairing_key_option(p, "monitor")
    p.log_level_option("WARNING")
    return p


def parse_settings(argv: Sequence[str], env: Mapping[str, str]) -> EngineSettings:
    """Raises ConfigError (one line) for anything wrong."""
    ns = build_parser(env).parse_args(list(argv))
    if ns.id is None:
        raise ConfigError("--id", "required: the charge point's id (or set EV_CP_ID)")
    home = cp_dir(ns.data_dir, ns.id)
    return EngineSettings(
        cp_id=ns.id,
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
