"""The site pairing key: how a monitor and its engine recognise each other.

Both processes hold the same random key (``EV_CP_PAIRING_KEY``, or a file created
0600 on first use). The engine serves the monitor's link with the protocol's own
key-based handshake (``verifier_from_key``); the monitor proves the key without
sending it, and everything after the handshake, the Central session key included,
travels encrypted under a fresh key. See docs/chargepoint.md.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

from common.chargepoint.errors import PairingKeyError
from common.config import ServiceParser
from common.errors import ConfigError
from common.protocol.keys import new_session_key

__all__ = ["MIN_KEY_LENGTH", "add_pairing_key_option", "load_pairing_key", "site_pairing_key"]

ENV_KEY = "EV_CP_PAIRING_KEY"
MIN_KEY_LENGTH = 32  # the handshake derives with HKDF, not a slow hash: it must be random


def load_pairing_key(path: Path, env: Mapping[str, str] | None = None) -> bytes:
    """The key from ``EV_CP_PAIRING_KEY``, else from ``path`` (created 0600 if absent).

    Creation is race-free: the engine and the monitor may start at the same moment and
    both end up with the one key that won (written to a temporary file, then linked).

    Raises:
        PairingKeyError: unreadable file, or a key too short to be a random key.
    """
    env = os.environ if env is None else env
    given = env.get(ENV_KEY, "").strip()
    if given:
        return _checked(given, ENV_KEY)
    try:
        return _checked(path.read_text(encoding="ascii").strip(), str(path))
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise PairingKeyError(f"cannot read the pairing key {path}: {exc}") from None
    _create(path)
    return _checked(path.read_text(encoding="ascii").strip(), str(path))


def add_pairing_key_option(parser: ServiceParser, peer: str) -> None:
    """``--pairing-key-file``, the same for the engine and its monitor (``peer``: the other)."""
    parser.option(
        "--pairing-key-file",
        env="EV_CP_PAIRING_KEY_FILE",
        default=None,
        parse=Path,
        metavar="FILE",
        help=f"key shared with the {peer} (created 0600 if absent; "
        f"default DATA_DIR/cp-ID/pairing.key; {ENV_KEY} gives the key itself)",
    )


def site_pairing_key(path: Path) -> bytes:
    """:func:`load_pairing_key` for a process start: a problem is one clear config line."""
    try:
        return load_pairing_key(path)
    except PairingKeyError as exc:
        raise ConfigError("pairing key", str(exc)) from None


def _checked(key: str, where: str) -> bytes:
    if len(key) < MIN_KEY_LENGTH or not key.isascii():
        raise PairingKeyError(
            f"{where}: the pairing key must be at least {MIN_KEY_LENGTH} random ASCII "
            "characters (delete the file to have a new one made)"
        )
    return key.encode("ascii")


def _create(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, new_session_key() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if the other process created it first: use theirs
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    except OSError as exc:
        raise PairingKeyError(f"cannot create the pairing key {path}: {exc.strerror}") from None
