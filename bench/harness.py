"""Small helpers the benchmarks share: the load scrypt cost, percentiles, progress lines.

Child processes (Central, the bare server), their CPU from /proc and clean stops are in
``bench.procs``; CPs and drivers are provisioned by ``common.db.provision``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from common.protocol.keys import ScryptParams

__all__ = ["LOAD_SCRYPT", "percentile", "progress"]

LOAD_SCRYPT = ScryptParams(n=1024)  # what the load generator and the tests use


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of ``values`` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@contextmanager
def progress(what: str) -> Iterator[None]:
    """Print ``what ...`` now and ``what: done in S s`` when the block ends without error."""
    print(f"{what} ...", flush=True)
    start = time.perf_counter()
    yield
    print(f"{what}: done in {time.perf_counter() - start:.1f} s", flush=True)
