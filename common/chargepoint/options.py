"""The options every charge-point program takes, and where a CP keeps its files. Pure parsing.

Declared once here so that ``ev-cp-engine``, ``ev-cp-monitor`` and ``ev-ocpp-sim`` read
the same flags and ``EV_*`` variables the same way.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from urllib.parse import urlsplit

from common.config import (
    Centrals,
    HostPort,
    ServiceParser,
    parse_centrals,
    parse_positive_float,
)
from common.errors import ConfigError
from common.protocol.handshake import valid_principal_id

__all__ = [
    "DEFAULT_CENTRAL",
    "DEFAULT_ENGINE",
    "add_central_option",
    "add_id_option",
    "add_location_option",
    "add_registry_options",
    "add_supply_options",
    "cp_dir",
    "cp_home",
    "parse_cp_id",
    "parse_https_url",
    "parse_location",
]

DEFAULT_ENGINE = HostPort("127.0.0.1", 7100)  # the engine's monitor link
DEFAULT_CENTRAL = Centrals((HostPort("127.0.0.1", 7000),))


def parse_cp_id(text: str) -> str:
    if not valid_principal_id(text):
        raise ValueError("1-32 letters, digits, '-' or '_'")
    return text


def parse_https_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("expected an https:// URL (the Registry speaks only HTTPS)")
    return text.rstrip("/")


def parse_location(text: str) -> str:
    text = text.strip()
    if not text or len(text) > 64:
        raise ValueError("1-64 characters")
    return text


def cp_dir(data_dir: Path, cp_id: str) -> Path:
    """Where one charge point keeps its files (pairing key, secret, journal)."""
    return data_dir / f"cp-{cp_id}"


def cp_home(args: argparse.Namespace) -> tuple[str, Path]:
    """The CP's id, which is required, and its :func:`cp_dir`, from parsed options.

    Raises:
        ConfigError: no ``--id`` (nor ``EV_CP_ID``).
    """
    if not args.id:
        raise ConfigError("--id", "required: the charge point's id (or set EV_CP_ID)")
    return args.id, cp_dir(args.data_dir, args.id)


def add_id_option(p: ServiceParser) -> None:
    """``--id`` / ``EV_CP_ID``."""
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


def add_supply_options(p: ServiceParser) -> None:
    """``--kw`` and ``--speed``: how fast a simulated charger delivers energy."""
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


def add_location_option(p: ServiceParser) -> None:
    """``--location`` / ``EV_CP_LOCATION``: where a CP is, for registering it."""
    p.option(
        "--location",
        env="EV_CP_LOCATION",
        default=None,
        parse=parse_location,
        metavar="CITY",
        help="where the CP is (needed to register)",
    )


def add_registry_options(p: ServiceParser) -> None:
    """The Registry's address and CA, and where the CP's secret is kept: every charge
    point that registers itself (the monitor, the OCPP simulator) takes these."""
    p.option(
        "--registry",
        env="EV_REGISTRY_URL",
        default="https://127.0.0.1:8443",
        parse=parse_https_url,
        metavar="URL",
        help="the Registry's base URL",
    )
    p.option(
        "--registry-ca",
        env="EV_REGISTRY_CA",
        default=None,
        parse=Path,
        metavar="PEM",
        help="CA file the Registry's certificate must chain to (default: system CAs)",
    )
    p.option(
        "--secret-file",
        env="EV_CP_SECRET_FILE",
        default=None,
        parse=Path,
        metavar="FILE",
        help="where the CP's secret is kept, 0600 (default DATA_DIR/cp-ID/secret)",
    )
