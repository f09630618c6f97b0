"""Central at its open-file limit: further peers are closed at once, the rest goes on."""

from __future__ import annotations

import asyncio
import time

from central.network import Network
from central.server import CentralServer
from central.writer import DbWriter
from common.db import open_database
from tests.support.auditkeys import TEST_AUDIT_KEYS

Peer = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _closed_at_once(peers: list[Peer]) -> list[bool]:
    """For each peer: did Central close it (EOF) instead of waiting for its HELLO?"""
    closed = []
    for reader, _ in peers:
        try:
            closed.append(await asyncio.wait_for(reader.read(1), 0.5) == b"")
        except TimeoutError:
            closed.append(False)
    return closed


def test_peers_beyond_capacity_are_closed_at_once_and_the_others_stay(sqlite_url: str) -> None:
    async def scenario() -> tuple[list[bool], list[bool]]:
        db = open_database(sqlite_url, audit_keys=TEST_AUDIT_KEYS)
        writer = DbWriter(db)
        writer.start()
        server = CentralServer(Network(writer, time.monotonic), writer, db, max_connections=3)
        host, port = await server.start("127.0.0.1", 0)
        peers = [await asyncio.open_connection(host, port) for _ in range(5)]
        first = await _closed_at_once(peers)
        for _, w in peers[:3]:
            w.close()  # room again
        await asyncio.sleep(0.2)
        later = [await asyncio.open_connection(host, port) for _ in range(2)]
        second = await _closed_at_once(later)
        for _, w in later + peers[3:]:
            w.close()
        await server.close()
        writer.stop()
        db.dispose()
        return first, second

    first, second = asyncio.run(scenario())
    assert first == [False, False, False, True, True]
    assert second == [False, False]  # once peers leave, new ones are served
