"""The audit chain's HMAC keys: where they come from, their ids, and rotation.

The chain is keyed so that someone who can write to the database but does not hold
the key cannot rewrite it (recompute the hashes after an edit) without detection.
So the key never lives in the database: it comes from ``EV_AUDIT_KEY`` or the file
named by ``EV_AUDIT_KEY_FILE``, else from ``<data dir>/audit.key``, created (mode
0600, 256 random bits) on first start. Every service that writes audit entries
(Registry, Central and ``ev-central drivers``) must be given the same keys.

Rotation: the setting holds several keys, newest first, separated by white space or new
lines; the first signs new entries and checkpoints, the others only verify older ones
(and the chain may never go back to an older key: :func:`common.db.chain.verify_from`).
Each entry stores the id of its key (a fingerprint, not the key), so old entries stay
verifiable for as long as their key is listed.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from common.config import make_private_dir, read_secret
from common.errors import ConfigError

__all__ = ["KEY_FILE", "MIN_KEY_CHARS", "AuditKeys", "load_audit_keys", "new_key_text"]

log = logging.getLogger(__name__)

KEY_FILE = "audit.key"  # under the data dir when no key is given
MIN_KEY_CHARS = 32  # secrets.token_urlsafe(32) gives 43


@dataclass(frozen=True)
class AuditKeys:
    """Named HMAC-SHA256 keys; ``current`` signs, every key verifies."""

    current: str
    keys: Mapping[str, bytes]

    @classmethod
    def from_text(cls, text: str, name: str = "EV_AUDIT_KEY") -> AuditKeys:
        """Keys separated by white space, the first current; ``#`` starts a comment.

        Raises:
            ConfigError: no key, or one shorter than :data:`MIN_KEY_CHARS`.
        """
        words = [word for line in text.splitlines() for word in line.split("#", 1)[0].split()]
        if not words:
            raise ConfigError(name, "no key given")
        keys: dict[str, bytes] = {}
        for word in words:
            if len(word) < MIN_KEY_CHARS:
                raise ConfigError(
                    name,
                    f"a key of {len(word)} characters is too short (at least {MIN_KEY_CHARS}; "
                    "make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')",
                )
            keys[key_id(word.encode())] = word.encode()
        return cls(key_id(words[0].encode()), keys)

    def sign(self, key_id: str, message: bytes) -> str:
        """HMAC-SHA256 of ``message`` under key ``key_id`` (hex). Raises KeyError if unknown."""
        return hmac.new(self.keys[key_id], message, hashlib.sha256).hexdigest()


def key_id(key: bytes) -> str:
    """A short public name of a key: a domain-separated hash, useless for guessing it."""
    return hashlib.sha256(b"evcharging audit key id\x00" + key).hexdigest()[:16]


def new_key_text() -> str:
    return secrets.token_urlsafe(32)


def load_audit_keys(data_dir: Path, env: Mapping[str, str] | None = None) -> AuditKeys:
    """``EV_AUDIT_KEY`` / ``EV_AUDIT_KEY_FILE``, else ``<data_dir>/audit.key`` (made once).

    Raises:
        ConfigError: the keys are malformed or the file cannot be read or written.
    """
    env = os.environ if env is None else env
    given = read_secret("EV_AUDIT_KEY", env)
    if given:
        name = "EV_AUDIT_KEY_FILE" if not env.get("EV_AUDIT_KEY") else "EV_AUDIT_KEY"
        return AuditKeys.from_text(given, name)
    path = Path(data_dir) / KEY_FILE
    try:
        return AuditKeys.from_text(_read_or_create(path), str(path))
    except OSError as exc:
        raise ConfigError("EV_AUDIT_KEY_FILE", f"cannot use {path}: {exc.strerror}") from None


def _read_or_create(path: Path) -> str:
    make_private_dir(path.parent)  # 0700, as every data dir: it holds a secret key
    try:
        # O_EXCL: two services starting at once on one data dir agree on one key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8")
    text = new_key_text() + "\n"
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    # Worth a line: every other writer of the chain must be given this same key.
    log.warning("made a new audit key", extra={"fields": {"path": str(path)}})
    return text
