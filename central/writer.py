"""Central's database writer: one thread applies work in order, a batch per transaction.

Writes go through one :class:`DbWriter` thread, in submission order, batched into
few transactions (one flush per batch; only if an item fails is the batch redone with
each item in its own savepoint). ``await writer.call(fn)`` returns once ``fn``'s
transaction has committed, so a ticket is durable before it is sent;
``writer.submit(fn)`` is fire-and-forget for progress and state events. The units of
work are the functions of :mod:`central.store`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from common.db import Database, batch

__all__ = ["DbWriter"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class DbWriter:
    """One thread that applies database work in order, a batch per transaction."""

    def __init__(
        self,
        db: Database,
        *,
        batch: int = 500,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._batch = batch
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[
            tuple[Callable[[Session], Any], concurrent.futures.Future[Any]] | None
        ] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout)

    def submit(self, fn: Callable[[Session], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fn, future))
        return future

    async def call(self, fn: Callable[[Session], T]) -> T:
        """Run ``fn`` in the writer; return its result once committed."""
        return await asyncio.wrap_future(self.submit(fn))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                break
            items = [first]
            while len(items) < self._batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                items.append(item)
            self._apply(items)

    def _apply(
        self, items: list[tuple[Callable[[Session], Any], concurrent.futures.Future[Any]]]
    ) -> None:
        try:
            try:
                outcomes = self._transaction(items, isolated=False)
            except _ItemFailed:
                # Rolled back: redo the batch with each item in its own savepoint.
                outcomes = self._transaction(items, isolated=True)
        except Exception as exc:
            log.exception("database write failed", extra={"fields": {"items": len(items)}})
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        if self._on_commit is not None:
            self._on_commit()
        for (ok, value), (_, future) in zip(outcomes, items, strict=True):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _transaction(
        self,
        items: list[tuple[Callable[[Session], Any], concurrent.futures.Future[Any]]],
        *,
        isolated: bool,
    ) -> list[tuple[bool, Any]]:
        """Apply ``items`` in one transaction.

        Not ``isolated`` (the usual case): no savepoints, and the batch's outbox rows,
        audit entries and progress updates are collected (:mod:`common.db.batch`) and sent
        as multi-row statements at the end; the first failing item raises
        :class:`_ItemFailed` and rolls everything back. ``isolated``: each item in its own
        savepoint, a failing one is recorded as its outcome and must not sink the batch.
        """
        outcomes: list[tuple[bool, Any]] = []
        with self._db.transaction() as session:
            if isolated:
                for fn, _ in items:
                    try:
                        with session.begin_nested():
                            outcomes.append((True, fn(session)))
                    except Exception as exc:  # one bad item must not sink the batch
                        outcomes.append((False, exc))
                return outcomes
            try:
                with batch.collecting(session):
                    outcomes.extend((True, fn(session)) for fn, _ in items)
                session.flush()  # an item's constraint violation surfaces here, not at commit
            except Exception as exc:
                raise _ItemFailed from exc
        return outcomes


class _ItemFailed(Exception):
    """An item of an unisolated batch raised: the batch is rolled back and redone."""
