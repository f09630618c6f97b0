"""Writes collected over one batch of work and sent at its end as multi-row statements.

Central's database writer applies hundreds of small units of work per transaction; a
telemetry is an UPDATE and an outbox row, a state change a CP row, an outbox row and an
audit entry. Sent one by one they cost a round trip through the ORM each. Inside
:func:`collecting`, a unit of work hands such a write to :func:`later` instead, and all
writes of one kind go out together when the batch ends, in the order they were handed
over (one executemany, or one multi-row INSERT). Outside a batch, :func:`later` writes
at once, so the same unit of work runs anywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy.orm import Session

__all__ = ["collecting", "flush", "later"]

T = TypeVar("T")
Flush = Callable[[Session, list[Any]], None]
_KEY = "ev_batch"


@contextmanager
def collecting(session: Session) -> Iterator[None]:
    """Collect :func:`later` writes; write them when the block ends without an error."""
    if _KEY in session.info:
        yield  # already collecting: the outer block writes
        return
    session.info[_KEY] = {}
    try:
        yield
    except BaseException:
        session.info.pop(_KEY, None)
        raise
    pending: dict[Flush, list[Any]] = session.info.pop(_KEY)
    for write, items in pending.items():
        write(session, items)


def later(session: Session, write: Callable[[Session, list[T]], None], item: T) -> None:
    """Hand ``item`` to ``write`` at the end of the batch; outside one, write it now."""
    pending: dict[Flush, list[Any]] | None = session.info.get(_KEY)
    if pending is None:
        write(session, [item])
    else:
        pending.setdefault(write, []).append(item)


def flush(session: Session, write: Callable[[Session, list[T]], None]) -> None:
    """Send what was collected for ``write`` now (a read that must see it comes next)."""
    pending: dict[Flush, list[Any]] | None = session.info.get(_KEY)
    items = pending.pop(write, None) if pending is not None else None
    if items:
        write(session, items)
