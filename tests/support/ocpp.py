"""OCPP 1.6J peers for tests: the simulated charger (the ``ocpp`` package's ChargePoint)
and a raw WebSocket for frames no well-behaved charger would send."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import uuid
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from ocpp_sim.charger import SimCharger

__all__ = ["basic", "call_raw", "open_ws", "sim_charger"]


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextlib.asynccontextmanager
async def open_ws(
    url: str,
    cp_id: str,
    secret: str | None,
    *,
    tls: ssl.SSLContext | None = None,
    user: str | None = None,
    subprotocols: list[str] | None = None,
) -> AsyncIterator[ClientConnection]:
    """A WebSocket to ``url/cp_id`` with Basic credentials (``user`` defaults to the id)."""
    headers = basic(user or cp_id, secret) if secret is not None else {}
    offered = [Subprotocol(p) for p in (["ocpp1.6"] if subprotocols is None else subprotocols)]
    async with connect(
        f"{url}/{cp_id}",
        subprotocols=offered,
        additional_headers=headers,
        ssl=tls,
        open_timeout=10,
    ) as ws:
        yield ws


@contextlib.asynccontextmanager
async def sim_charger(
    url: str,
    cp_id: str,
    secret: str,
    *,
    tls: ssl.SSLContext | None = None,
    boot: bool = True,
    **options: Any,
) -> AsyncIterator[SimCharger]:
    """A booted :class:`SimCharger` connected to Central (60x real time by default)."""
    options.setdefault("speed", 60.0)
    async with open_ws(url, cp_id, secret, tls=tls) as ws:
        charger = SimCharger(cp_id, ws, **options)
        serving = asyncio.create_task(charger.start())
        try:
            if boot:
                assert await charger.boot(), f"{cp_id}'s boot was not accepted"
            yield charger
        finally:
            await charger.close()
            serving.cancel()
            with contextlib.suppress(BaseException):
                await serving


async def call_raw(
    ws: ClientConnection, frame: Any, unique_id: str | None = None, timeout: float = 10
) -> list[Any]:
    """Send ``frame`` (a list, or text as is) and return Central's answer to ``unique_id``.

    Calls Central makes meanwhile (ChangeAvailability on connecting) are answered
    ``Accepted``, as a charger would.
    """
    await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message[0] == 2:
                await ws.send(json.dumps([3, message[1], {"status": "Accepted"}]))
                continue
            if unique_id is None or message[1] == unique_id:
                return list(message)


def new_id() -> str:
    return str(uuid.uuid4())
