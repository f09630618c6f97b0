"""Readiness as a contract: the one line a service prints once it serves, and its parser.

A service calls :func:`announce` once it really serves (its sockets accept connections);
whoever started it (the demo, the tests, the benchmarks) reads that line back with
:func:`find_ready` instead of matching the human-readable lines, which stay as they are
and may be reworded freely. The line::

    EV-READY registry url=https://127.0.0.1:8443 ca=/data/registry-tls/ca.pem

``EV-READY`` starts the line, then the service's name, then ``key=value`` fields quoted
like a POSIX shell word when needed (a path with a space: ``ca='/my data/ca.pem'``).
A field whose value is None is left out. A process that serves several times (the
workers of ``ev-central --workers N``, each restart) announces each time; the fields
tell the announcements apart.

Services and their fields:

============  =========================================================================
registry      ``url`` (https://HOST:PORT), ``ca`` (the CA file it made, if it made one)
central       ``listen`` (HOST:PORT), ``api`` (http://HOST:PORT/api)
central-ocpp  ``url`` (ws[s]://HOST:PORT/ocpp), with --ocpp, once it listens
weather       ``url`` (http://HOST:PORT)
web           ``url`` (http://HOST:PORT/)
cp_engine     ``cp`` (its id), ``listen`` (HOST:PORT: the monitor link)
demo          ``data`` (its data directory), ``api``, ``dashboard``: all is up
bench-bare    ``listen`` (HOST:PORT)
============  =========================================================================
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

__all__ = ["MARK", "announce", "find_ready", "parse_ready", "ready_line"]

MARK = "EV-READY"
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*\Z")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def ready_line(service: str, **fields: object) -> str:
    """The line :func:`announce` prints (without its newline).

    Raises:
        ValueError: a service name that is not one word, or a value with a line break
            (the line must stay one line).
    """
    if not _NAME.match(service):
        raise ValueError(f"service name {service!r} is not one word")
    words = [MARK, service]
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if text and text.splitlines() != [text]:  # any line break, as the reader splits
            raise ValueError(f"{service} {key}: a ready field must fit on one line")
        words.append(f"{key}={shlex.quote(text)}")
    return " ".join(words)


def announce(service: str, **fields: object) -> None:
    """Print the ready line on stdout (flushed): call it once the service really serves."""
    print(ready_line(service, **fields), flush=True)


def parse_ready(line: str) -> tuple[str, dict[str, str]] | None:
    """A ready line's service and fields; None for any other line (or a garbled one)."""
    if not line.startswith(MARK + " "):
        return None
    try:
        words = shlex.split(line[len(MARK) :])
    except ValueError:  # an unclosed quote: a line cut short
        return None
    if not words or not _NAME.match(words[0]):
        return None
    fields = {}
    for word in words[1:]:
        key, sep, value = word.partition("=")
        if not sep or not _KEY.match(key):
            return None
        fields[key] = value
    return words[0], fields


def find_ready(
    text: str, service: str, where: Mapping[str, str] | None = None
) -> list[dict[str, str]]:
    """Every announcement of ``service`` in ``text`` (a log), oldest first.

    Args:
        where: keep only announcements whose fields include these values (e.g. one
            worker's ``{"api": "http://127.0.0.1:8002/api"}``).
    """
    found = []
    for line in text.splitlines():
        parsed = parse_ready(line)
        if parsed is None or parsed[0] != service:
            continue
        fields = parsed[1]
        if where and any(fields.get(key) != value for key, value in where.items()):
            continue
        found.append(fields)
    return found
