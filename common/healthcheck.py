"""``python -m common.healthcheck``: the health checks of the container image.

    python -m common.healthcheck http://127.0.0.1:8001/api/health 127.0.0.1:7000
    python -m common.healthcheck --ca /data/registry-tls/ca.pem https://127.0.0.1:8443/api/health
    python -m common.healthcheck 127.0.0.1:7100 central.example:7000

A target is a URL (healthy when a GET answers 2xx) or HOST:PORT (healthy when it accepts
a TCP connection; HOST:PORT,HOST:PORT... when any of them does). Exit status 0 when every
target is healthy, 1 with one line on stderr naming the first that is not, 2 on a usage
error. Targets may hold ``$VARIABLES``,
expanded from the environment, so a compose health check follows the same settings as
the service it checks.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Sequence

import requests

from common.config import parse_centrals

__all__ = ["main"]

TIMEOUT = 3.0


def check_http(url: str, ca: str | None) -> str | None:
    """None when ``url`` answers 2xx, else why not."""
    try:
        response = requests.get(url, timeout=TIMEOUT, verify=ca if ca else True)
    except requests.RequestException as exc:
        return f"{url}: {type(exc).__name__}"
    if not response.ok:
        return f"{url}: HTTP {response.status_code}"
    return None


def check_tcp(address: str) -> str | None:
    """None when ``address`` accepts a TCP connection, else why not.

    ``HOST:PORT,HOST:PORT...`` (a client given several Centrals): healthy when any accepts.
    """
    try:
        targets = parse_centrals(address)
    except ValueError as exc:
        return f"{address}: {exc}"
    why = ""
    for target in targets:
        try:
            with socket.create_connection((target.host, target.port), TIMEOUT):
                return None
        except OSError as exc:
            why = f"{target}: {exc.strerror or exc}"
    return why if len(targets) == 1 else f"none of {address} accepts ({why})"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m common.healthcheck",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("targets", nargs="+", metavar="TARGET", help="URL or HOST:PORT")
    parser.add_argument("--ca", help="CA file for https:// URLs (default: system CAs)")
    args = parser.parse_args(argv)
    ca = os.path.expandvars(args.ca) if args.ca else None
    for raw in args.targets:
        target = os.path.expandvars(raw)
        if target.startswith(("http://", "https://")):
            problem = check_http(target, ca)
        else:
            problem = check_tcp(target)
        if problem:
            print(f"unhealthy: {problem}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
