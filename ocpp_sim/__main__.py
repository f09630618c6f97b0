"""``ev-ocpp-sim``: a simulated OCPP 1.6J charger that connects to Central's OCPP listener.

ev-ocpp-sim --id CP9 --url ws://127.0.0.1:9000/ocpp --secret-file cp9.secret
ev-ocpp-sim --id CP9 --location Madrid --auto --registry https://127.0.0.1:8443 ...

Settings are parsed in :mod:`ocpp_sim.settings`.
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

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from common.backoff import Backoff
from common.chargepoint.errors import ChargePointError
from common.chargepoint.registry_client import RegistryClient
from common.chargepoint.secret_file import SecretFile
from common.config import argv_or_default, require_secret, run_main
from common.errors import ConfigError
from common.logs import setup_logging
from ocpp_sim.charger import SimCharger
from ocpp_sim.settings import PROG, SimSettings, parse_settings

__all__ = ["main"]

log = logging.getLogger("ocpp_sim")


def _secret(s: SimSettings) -> str:
    path = s.secret_file
    file = SecretFile(path, s.cp_id)
    if not file.exists() and s.auto:
        if not s.location:
            raise ConfigError("--location", "needed to register (with --auto)")
        token = require_secret("EV_PROVISIONING_TOKEN")
        try:
            file.write(
                RegistryClient(s.registry, s.registry_ca).register(s.cp_id, s.location, token)
            )
        except ChargePointError as exc:
            raise ConfigError("--registry", str(exc)) from None
        print(f"Registered {s.cp_id}", flush=True)
    if not file.exists():
        raise ConfigError(
            "--secret-file", f"no secret for {s.cp_id} in {path}: register first (--auto)"
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


async def _run(s: SimSettings, secret: str, stop: asyncio.Event) -> int:
    backoff = Backoff(first=0.5, cap=10.0)
    url = f"{s.url}/{s.cp_id}"
    tls = _tls(s.url, s.ca)
    while not stop.is_set():
        try:
            async with connect(
                url,
                subprotocols=[Subprotocol("ocpp1.6")],
                additional_headers={"Authorization": _basic(s.cp_id, secret)},
                ssl=tls,
                open_timeout=10,
            ) as ws:
                charger = SimCharger(s.cp_id, ws, kw=s.kw, speed=s.speed, max_session=s.max_session)
                serving = asyncio.ensure_future(charger.start())
                if not await charger.boot():
                    print(f"Central rejected {s.cp_id}'s boot notification", flush=True)
                    serving.cancel()
                    return 1
                print(f"{s.cp_id} connected to {url}", flush=True)
                backoff.reset()
                stopping = asyncio.ensure_future(stop.wait())
                await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                await charger.close()
                serving.cancel()
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                print(f"Central refused {s.cp_id}'s credentials (401)", file=sys.stderr)
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
    settings = parse_settings(argv)
    setup_logging("ocpp_sim", settings.log_level)
    secret = _secret(settings)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await _run(settings, secret, stop)

    return asyncio.run(main())


def main(argv: Sequence[str] | None = None) -> int:
    args = argv_or_default(argv)
    return run_main(PROG, lambda: _serve(args))


if __name__ == "__main__":
    sys.exit(main())
