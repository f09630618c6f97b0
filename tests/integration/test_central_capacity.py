"""Central at its open-file limit: further peers are closed at once, the rest goes on."""

from __future__ import annotations

import asyncio
import time

from central.network import Network
from central.server import CentralServer
from central.writer import DbWriter
from common.db import open_database


def test_peers_beyond_capacity_are_closed_at_once_and_the_others_stay(sqlite_url: str) -> None:
    async def scenario() -> tuple[list[bool], list[bool]]:
        db = open_database(sqlite_url)
        writer = DbWriter(db)
        writer.start()
        server = CentralServer(Network(writer, time.monotonic), writer, db, max_connections=3)
        host, port = await server.start("127.0.0.1", 0)
        peers = [await asyncio.open_connection(host, port) for _ in range(5)]
        closed = []
        for reader, _ in peers:
            try:
                closed.append(await asyncio.wait_for(reader.read(1), 0.5) == b"")
            except TimeoutError:
                closed.append(False)  # still open, waiting for its HELLO
        for _, w in peers[:3]:
            w.close()  # room again
        await asyncio.sleep(0.2)
        again = [await asyncio.open_connection(host, port) for _ in range(2)]
        still = []
        for reader, _ in again:
            try:
                still.append(await asyncio.wait_for(reader.read(1), 0.5) == b"")
            except TimeoutError:
                still.append(False)
        for _, w in again + peers[3:]:
            w.close()
        await server.close()
        writer.stop()
        db.dispose()
        return closed, still

    closed, again = asyncio.run(scenario())
    assert closed == [False, False, False, True, True]
    assert again == [False, False]  # once peers leave, new ones are served
