"""Small helpers the benchmarks share: provisioning CPs, percentiles, progress lines.

Child processes (Central, the bare server), their CPU from /proc and clean stops are in
``bench.procs``.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal

from common.db import open_database
from common.db.models import ChargePoint, Credential, PrincipalKind
from common.protocol.keys import ScryptParams, make_verifier

__all__ = ["LOAD_SCRYPT", "percentile", "progress", "provision"]

LOAD_SCRYPT = ScryptParams(n=1024)  # what the load generator and the tests use


def provision(
    url: str,
    count: int,
    prefix: str = "CP",
    params: ScryptParams = LOAD_SCRYPT,
    locations: Sequence[str] = (),
) -> dict[str, str]:
    """Register ``count`` CPs with fresh secrets in one transaction (what the Registry does).

    CP number ``i`` is in ``locations[i % len(locations)]`` (default: ``City0``..``City9``).

    Returns:
        ``{cp_id: secret}`` with ids ``<prefix>00000``, ``<prefix>00001``...
    """
    db = open_database(url)
    out: dict[str, str] = {}
    try:
        with db.transaction() as session:
            places = list(locations) or [f"City{n}" for n in range(10)]
            for i in range(count):
                cp_id = f"{prefix}{i:05d}"
                secret = secrets.token_urlsafe(32)
                where = places[i % len(places)]
                session.add(ChargePoint(id=cp_id, location=where, price_eur_kwh=Decimal("0.30")))
                session.add(Credential.of(PrincipalKind.CP, cp_id, make_verifier(secret, params)))
                out[cp_id] = secret
    finally:
        db.dispose()
    return out


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
