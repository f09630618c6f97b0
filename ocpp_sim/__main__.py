"""``ev-ocpp-sim``: a simulated OCPP 1.6J charger that connects to Central's OCPP listener.

ev-ocpp-sim --id CP9 --url ws://127.0.0.1:9000/ocpp --secret-file cp9.secret
ev-ocpp-sim --id CP9 --location Madrid --auto --registry https://127.0.0.1:8443 ...
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import signal
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from common.chargepoint.errors import ChargePointError
from common.chargepoint.options import (
    add_id_option,
    add_location_option,
    add_registry_options,
    add_supply_options,
    cp_home,
)
from common.chargepoint.registry_client import RegistryClient
from common.chargepoint.secret_file import SecretFile
from common.config import (
    ServiceParser,
    argv_or_default,
    parse_positive_float,
    require_secret,
    run_main,
)
from common.errors import ConfigError
from common.logs import setup_logging
from cp_engine.backoff import Backoff
from ocpp_sim.charger import SimCharger

__all__ = ["main"]

log = logging.getLogger("ocpp_sim")

PROG = "ev-ocpp-sim"
DESCRIPTION = """A simulated OCPP 1.6J charge point (one connector), built on the `ocpp`
package's ChargePoint: it connects to ws[s]://.../ocpp/<ID> with HTTP Basic auth
(security profile 1, or 2 over wss:// with --ca), boots, reports its status, takes
remote starts and stops and availability changes, and meters every second.

Run it:     ev-ocpp-sim --id CP9 --url ws://127.0.0.1:9000/ocpp --secret-file cp9.secret
Register:   EV_PROVISIONING_TOKEN=... ev-ocpp-sim --id CP9 --location Madrid --auto \\
                --registry https://127.0.0.1:8443 --registry-ca ca.pem --url ..."""


def _parse_url(text: str) -> str:
    url = text.strip().rstrip("/")
    if not url.startswith(("ws://", "wss://")):
        raise ValueError("expected ws://HOST:PORT/ocpp or wss://HOST:PORT/ocpp")
    return url


def _parser() -> ServiceParser:
    parser = ServiceParser(PROG, DESCRIPTION)
    add_id_option(parser)
    parser.option(
        "--url",
        env="EV_CENTRAL_OCPP_URL",
        default="ws://127.0.0.1:9000/ocpp",
        parse=_parse_url,
        metavar="URL",
        help="Central's OCPP endpoint; the charger connects to URL/ID",
    )
    parser.option(
        "--ca",
        env="EV_OCPP_CA",
        default=None,
        parse=Path,
        metavar="PEM",
        help="CA file Central's wss:// certificate must chain to (default: system CAs)",
    )
    add_location_option(parser)
    add_registry_options(parser)
    parser.flag(
        "--auto", env="EV_CP_AUTO", help="register at the Registry first if there is no secret"
    )
    add_supply_options(parser)
    parser.option(
        "--max-session",
        env="EV_CP_MAX_SESSION",
        default=4 * 3600.0,
        parse=parse_positive_float,
        metavar="S",
        help="simulated seconds after which the vehicle leaves by itself",
    )
    parser.data_dir_option("where the secret lives")
    parser.log_level_option("WARNING")
    return parser


def _secret(args: Any, home: Path) -> str:
    path = args.secret_file or home / "secret"
    file = SecretFile(path, args.id)
    if not file.exists() and args.auto:
        if not args.location:
            raise ConfigError("--location", "needed to register (with --auto)")
        token = require_secret("EV_PROVISIONING_TOKEN")
        try:
            file.write(
                RegistryClient(args.registry, args.registry_ca).register(
                    args.id, args.location, token
                )
            )
        except ChargePointError as exc:
            raise ConfigError("--registry", str(exc)) from None
        print(f"Registered {args.id}", flush=True)
    if not file.exists():
        raise ConfigError(
            "--secret-file", f"no secret for {args.id} in {path}: register first (--auto)"
        )
    try:
        return file.read()
    except ChargePointError as exc:
        raise ConfigError("--secret-file", str(exc)) from None


def _tls(url: str, ca: Path | None) -> ssl.SSLContext | None:
    if not url.startswith("wss://"):
        return None
    context = ssl.create_default_context()
    if ca is not None:
        try:
            context.load_verify_locations(str(ca))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError("--ca", f"cannot load {ca}: {exc}") from None
    return context


async def _run(args: Any, secret: str, stop: asyncio.Event) -> int:
    backoff = Backoff(first=0.5, cap=10.0)
    url = f"{args.url}/{args.id}"
    tls = _tls(args.url, args.ca)
    while not stop.is_set():
        try:
            async with connect(
                url,
                subprotocols=[Subprotocol("ocpp1.6")],
                additional_headers={"Authorization": _basic(args.id, secret)},
                ssl=tls,
                open_timeout=10,
            ) as ws:
                charger = SimCharger(
                    args.id, ws, kw=args.kw, speed=args.speed, max_session=args.max_session
                )
                serving = asyncio.ensure_future(charger.start())
                if not await charger.boot():
                    print(f"Central rejected {args.id}'s boot notification", flush=True)
                    serving.cancel()
                    return 1
                print(f"{args.id} connected to {url}", flush=True)
                backoff.reset()
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                await charger.close()
                serving.cancel()
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                print(f"Central refused {args.id}'s credentials (401)", file=sys.stderr)
                return 4
            print(f"Central answered {status}; retrying", file=sys.stderr)
        except (OSError, WebSocketException, TimeoutError) as exc:
            print(f"Cannot reach Central at {url}: {type(exc).__name__}; retrying", flush=True)
        if stop.is_set():
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff.next())
    return 0


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _serve(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    _, home = cp_home(args)
    setup_logging("ocpp_sim", args.log_level)
    secret = _secret(args, home)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await _run(args, secret, stop)

    return asyncio.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = argv_or_default(argv)
    return run_main(PROG, lambda: _serve(args))


if __name__ == "__main__":
    sys.exit(main())
