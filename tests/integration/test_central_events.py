"""Central's state changes and sessions reach Kafka through the outbox."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from central.drivers import add_driver
from common.events import EventType
from common.infra import EmbeddedBroker
from common.protocol.messages import MessageType
from tests.support.auditkeys import TEST_AUDIT_KEYS
from tests.support.broker import EventCollector, wait_until
from tests.support.central import ScriptedCP, driver, provision_cp, start_central
from tests.support.scrypt import CHEAP_SCRYPT

pytestmark = pytest.mark.integration


def test_a_charge_is_told_on_the_event_stream(
    tmp_path: Path, sqlite_url: str, free_port: Callable[[], int], broker: EmbeddedBroker
) -> None:
    with EventCollector(broker.bootstrap) as collector:
        central = start_central(
            tmp_path, sqlite_url, free_port(), free_port(), kafka=broker.bootstrap
        )
        try:
            secret = provision_cp(sqlite_url, "EVT1", "Bilbao", "0.30")
            d_secret = add_driver(sqlite_url, "EVD1", CHEAP_SCRYPT, TEST_AUDIT_KEYS)

            async def scenario() -> str:
                cp = await ScriptedCP("EVT1", secret, central.addr).connect()
                await central.wait_state("EVT1", "ACTIVATED")
                drv = await driver(central.addr, "EVD1", d_secret)
                drv.send(MessageType.CHARGE_REQUEST, {"cp_id": "EVT1"})
                session_id = await cp.accept_authorization()
                cp.plug(session_id)
                cp.telemetry(session_id, 1.5)
                await cp.unplug(session_id, 2.0)
                await drv.recv_until({MessageType.TICKET}, 5)
                await drv.close()
                await cp.close()
                return session_id

            session_id = asyncio.run(scenario())

            def mine() -> list[tuple[EventType, dict[str, object]]]:
                return [(e.type, e.data) for e in collector.events() if e.cp_id == "EVT1"]

            def has_ticket() -> bool:
                return any(t is EventType.SESSION_ENDED for t, _ in mine())

            wait_until(has_ticket, 15, lambda: f"no session.ended in {mine()}")
            kinds = [t for t, _ in mine()]
            for kind in (
                EventType.CP_AUTHENTICATED,
                EventType.CP_STATE_CHANGED,
                EventType.SESSION_AUTHORIZED,
                EventType.SESSION_STARTED,
                EventType.SESSION_PROGRESS,
                EventType.SESSION_ENDED,
            ):
                assert kind in kinds, kind
            states = [d["to"] for t, d in mine() if t is EventType.CP_STATE_CHANGED]
            assert states[:3] == ["ACTIVATED", "SUPPLYING", "ACTIVATED"]
            ticket = next(d for t, d in mine() if t is EventType.SESSION_ENDED)
            assert ticket["session_id"] == session_id and ticket["total_eur"] == 0.6
        finally:
            central.proc.stop()
