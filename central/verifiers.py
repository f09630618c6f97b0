"""Verifier look-ups for logins, answered together: one query for all that wait.

A connect storm (Central restarted under 10,000 CPs) brings hundreds of HELLOs at
once. Each needs its principal's verifier from the database; asked one by one, each
costs a thread-pool round trip, a transaction and a query. Here a look-up waits for
the query in flight, and the next query answers everybody who arrived meanwhile
(``WHERE principal_id IN (...)``). One login alone still costs one query.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from itertools import islice

from central.reads import load_verifiers
from common.db import Database
from common.protocol.keys import Verifier

__all__ = ["VerifierLookups"]

MAX_BATCH = 500  # ids per query (SQLite's variable limit is far above)


class VerifierLookups:
    """``await lookups.get(kind, id)``: the verifier of an active principal, or None."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: dict[tuple[str, str], list[asyncio.Future[Verifier | None]]] = defaultdict(
            list
        )
        self._running: asyncio.Task[None] | None = None

    async def get(self, kind: str, principal_id: str) -> Verifier | None:
        future: asyncio.Future[Verifier | None] = asyncio.get_running_loop().create_future()
        self._waiting[(kind, principal_id)].append(future)
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._answer())
        return await future

    async def _answer(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            keys = list(islice(self._waiting, MAX_BATCH))  # the oldest first
            waiting = {key: self._waiting.pop(key) for key in keys}
            try:
                found = await loop.run_in_executor(None, self._read, keys)
            except Exception as exc:  # every waiting login fails, none hangs
                for futures in waiting.values():
                    for future in futures:
                        if not future.done():
                            future.set_exception(exc)
                continue
            for key, futures in waiting.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(key))

    def _read(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Verifier]:
        by_kind: dict[str, list[str]] = defaultdict(list)
        for kind, principal_id in keys:
            by_kind[kind].append(principal_id)
        found: dict[tuple[str, str], Verifier] = {}
        with self._db.query() as conn:
            for kind, ids in by_kind.items():
                for principal_id, verifier in load_verifiers(conn, kind, ids).items():
                    found[(kind, principal_id)] = verifier
        return found
