"""Service configuration: flag > ``EV_*`` environment variable > default.

Every service builds a :class:`ServiceParser`, declares its options with
:meth:`ServiceParser.option`, and calls :func:`run_main` so that a bad setting
becomes one clear line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from common.errors import ConfigError

__all__ = [
    "LOG_LEVELS",
    "Centrals",
    "HostPort",
    "ServiceParser",
    "argv_or_default",
    "default_data_dir",
    "make_private_dir",
    "parse_bool",
    "parse_centrals",
    "parse_host_port",
    "parse_http_url",
    "parse_log_level",
    "parse_non_negative_float",
    "parse_positive_float",
    "parse_positive_int",
    "read_secret",
    "require_secret",
    "run_main",
]


class HostPort(tuple[str, int]):
    """A ``(host, port)`` pair that prints as ``host:port``."""

    __slots__ = ()

    def __new__(cls, host: str, port: int) -> HostPort:
        return super().__new__(cls, (host, port))

    @property
    def host(self) -> str:
        return self[0]

    @property
    def port(self) -> int:
        return self[1]

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class Centrals(tuple[HostPort, ...]):
    """One or more Central addresses (``h1:p1,h2:p2``), printed as they were given."""

    __slots__ = ()

    def __str__(self) -> str:
        return ",".join(str(addr) for addr in self)


def parse_centrals(text: str) -> Centrals:
    """Parse ``HOST:PORT[,HOST:PORT...]``: the Centrals a CP or driver may reach."""
    parts = [part for part in text.split(",") if part.strip()]
    if not parts:
        raise ValueError("expected HOST:PORT[,HOST:PORT...], for example 127.0.0.1:7000")
    return Centrals(parse_host_port(part) for part in parts)


def parse_host_port(text: str) -> HostPort:
    """Parse ``HOST:PORT`` (``[v6]:PORT`` for IPv6); port 0 means any free port."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError("expected HOST:PORT, for example 127.0.0.1:7000")
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"port {port_text!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is outside 0-65535")
    return HostPort(host, port)


def parse_positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be greater than 0")
    return value


def parse_non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise ValueError("must be 0 or more")
    return value


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a whole number greater than 0")
    return value


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected true or false")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def parse_log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return level


def parse_http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL")
    return text.rstrip("/")


def default_data_dir() -> Path:
    """Where services keep their files when ``EV_DATA_DIR`` is not set."""
    return Path.cwd() / "data"


def make_private_dir(path: Path) -> Path:
    """Create ``path`` and its missing parents as 0700 (this user only); returns ``path``.

    A data directory holds the database (credential verifiers, whose ``server_key`` lets
    a thief pose as Central) and private keys. Directories that already exist keep
    their mode: they may be the operator's own (a home directory), not ours to tighten.
    """
    missing = []
    here = path
    while not here.exists():
        missing.append(here)
        here = here.parent
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)  # exist_ok: another service raced us
    return path


def read_secret(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """An optional secret from ``NAME`` or from the file named by ``NAME_FILE``; None if unset.

    Secrets never have defaults: one the service cannot run without is read with
    :func:`require_secret`.

    Raises:
        ConfigError: ``NAME_FILE`` names a file that cannot be read.
    """
    return _secret_value(name, env) or None


def require_secret(name: str, env: Mapping[str, str] | None = None) -> str:
    """A secret the service cannot run without, from ``NAME`` or ``NAME_FILE``.

    Raises:
        ConfigError: neither gives it, or the file cannot be read (one line, exit code 2).
    """
    value = _secret_value(name, env)
    if not value:
        raise ConfigError(name, f"not set (set {name} or {name}_FILE)")
    return value


def _secret_value(name: str, env: Mapping[str, str] | None) -> str | None:
    env = os.environ if env is None else env
    value = env.get(name)
    if not value and env.get(f"{name}_FILE"):
        path = Path(env[f"{name}_FILE"])
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE", f"cannot read {path}: {exc.strerror}") from None
    return value


class ServiceParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose options fall back to ``EV_*`` environment variables.

    Parse errors raise :class:`ConfigError` instead of exiting, so :func:`run_main`
    reports them in one line.
    """

    def __init__(
        self,
        prog: str | None = None,
        description: str | None = None,
        env: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(prog=prog, description=description, **kwargs)
        self._env = os.environ if env is None else env

    def option(
        self,
        flag: str,
        *,
        env: str | None,
        default: Any,
        help: str,  # noqa: A002 - argparse's own name
        parse: Callable[[str], Any] = str,
        metavar: str | None = None,
    ) -> None:
        """Declare ``--flag`` with an environment fallback ``env`` and a default."""
        dest = flag.lstrip("-").replace("-", "_")
        source = "default"
        value = default
        if env and self._env.get(env):
            source, raw = env, self._env[env]
            try:
                value = parse(raw)
            except (ValueError, TypeError) as exc:
                raise ConfigError(env, f"{raw!r}: {exc}") from None
        where = f" (env {env})" if env else ""
        shown = "" if default is None else f"; default {default}"
        self.add_argument(
            flag,
            dest=dest,
            type=_flag_parser(flag, parse),
            default=value,
            metavar=metavar or dest.upper(),
            help=f"{help}{where}{shown}",
        )
        self.set_defaults(**{f"_source_{dest}": source})

    def flag(self, flag: str, *, env: str, help: str) -> None:  # noqa: A002 - argparse's name
        """A boolean ``--flag``, also switched on by ``env=true`` (flag > env > off)."""
        default = False
        if self._env.get(env):
            try:
                default = parse_bool(self._env[env])
            except ValueError as exc:
                raise ConfigError(env, f"{self._env[env]!r}: {exc}") from None
        self.add_argument(
            flag, action="store_true", default=default, help=f"{help} (env {env}=true)"
        )

    # The options every service shares, declared once.
    def data_dir_option(self, help: str) -> None:  # noqa: A002 - argparse's own name
        """``--data-dir`` / ``EV_DATA_DIR``: where this service keeps its files."""
        self.option(
            "--data-dir",
            env="EV_DATA_DIR",
            default=default_data_dir(),
            parse=Path,
            metavar="DIR",
            help=help,
        )

    def database_url_option(self) -> None:
        """``--database-url`` / ``EV_DATABASE_URL``; unset means SQLite in the data dir."""
        self.option(
            "--database-url",
            env="EV_DATABASE_URL",
            default=None,
            metavar="URL",
            help="SQLAlchemy URL of the database the services share; "
            "default a SQLite file in the data dir",
        )

    def log_level_option(self, default: str = "INFO") -> None:
        """``--log-level`` / ``EV_LOG_LEVEL`` of the key=value log on stderr."""
        self.option(
            "--log-level",
            env="EV_LOG_LEVEL",
            default=default,
            parse=parse_log_level,
            metavar="LEVEL",
            help="DEBUG, INFO, WARNING or ERROR (the key=value log on stderr)",
        )

    def error(self, message: str) -> NoReturn:
        raise ConfigError(self.prog, message)


def _flag_parser(flag: str, parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def wrapped(raw: str) -> Any:
        try:
            return parse(raw)
        except (ValueError, TypeError) as exc:
            raise ConfigError(flag, f"{raw!r}: {exc}") from None

    return wrapped


def run_main(prog: str, body: Callable[[], int]) -> int:
    """Run a service's body; turn configuration errors and Ctrl+C into exit codes."""
    try:
        return body()
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


def argv_or_default(argv: Sequence[str] | None) -> list[str]:
    return list(sys.argv[1:] if argv is None else argv)
