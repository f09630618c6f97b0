"""The CP's secret on disk, for every program that logs in as the CP (monitor, OCPP simulator).

Readable only by its owner, written atomically.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from common.chargepoint.errors import SecretMissing

__all__ = ["SecretFile"]


class SecretFile:
    def __init__(self, path: Path, cp_id: str) -> None:
        self.path = path
        self.cp_id = cp_id

    def exists(self) -> bool:
        return self.path.is_file()

    def read(self) -> str:
        """The secret.

        Raises:
            SecretMissing: no file, unreadable, or empty; the text says to register first.
        """
        try:
            secret = self.path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise SecretMissing(
                f"No secret for {self.cp_id}: {self.path} does not exist. "
                "Register first (menu r, or run with --auto)"
            ) from None
        except OSError as exc:
            raise SecretMissing(
                f"Cannot read the secret file {self.path}: {exc.strerror}. "
                "Fix its permissions or register again"
            ) from None
        if not secret:
            raise SecretMissing(f"The secret file {self.path} is empty. Register first (menu r)")
        return secret

    def loose_permissions(self) -> bool:
        """True when group or others may read the file."""
        try:
            return bool(self.path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO))
        except OSError:
            return False

    def write(self, secret: str) -> None:
        """Save ``secret`` as a 0600 file (temporary file, fsync, rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # even if a stale temporary file had other bits
            os.write(fd, secret.encode("utf-8") + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    def delete(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
