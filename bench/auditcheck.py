"""Audit chain benchmark: what verifying costs, and what it costs the writer meanwhile.

    python -m bench.auditcheck [--entries 40000] [--append 100] [--database-url URL]

On a fresh database (SQLite in a temporary directory unless ``--database-url``), it
appends ``--entries`` signed entries (HMAC chain, 5,000 per transaction), then measures:

* **full** — ``verify_chain``: every entry re-read and re-signed (what every
  ``GET /api/audit`` did before the check became incremental);
* **incremental** — ``ChainVerifier.check`` after ``--append`` more entries: what an
  operator's ``GET /api/audit`` costs now;
* **writer stall** — the longest gap between commits of a thread appending one audited
  event per transaction (as Central's writer does) while a full check runs in another
  thread of the same process, next to the same with nothing else running. The check
  reads in a snapshot and never takes the writer's turn: what remains is the GIL.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import cli
from bench.report import report, table
from common.db import Database, open_database
from common.db.audit import Entry, append
from common.db.auditkeys import AuditKeys, new_key_text
from common.db.chain import ChainVerifier, verify_chain


def _fill(db: Database, count: int) -> float:
    started = time.perf_counter()
    for start in range(0, count, 5000):
        with db.transaction() as session:
            entries = [
                Entry(actor="central", action="cp.state_changed", cp_id=f"CP{i % 50}")
                for i in range(start, min(count, start + 5000))
            ]
            append(session, entries)
    return time.perf_counter() - started


def _writer_gaps(db: Database, stop: threading.Event) -> list[float]:
    """Commit one audited entry per transaction until ``stop``; the gaps between commits."""
    gaps: list[float] = []
    last = time.perf_counter()
    while not stop.is_set():
        with db.transaction() as session:
            append(session, [Entry(actor="operator", action="operator.command")])
        now = time.perf_counter()
        gaps.append(now - last)
        last = now
    return gaps


def _stall(db: Database, keys: AuditKeys, with_check: bool, seconds: float) -> dict[str, Any]:
    stop = threading.Event()
    result: list[list[float]] = []
    writer = threading.Thread(target=lambda: result.append(_writer_gaps(db, stop)))
    writer.start()
    started = time.perf_counter()
    if with_check:
        with db.read() as session:
            verify_chain(session, keys)
    while time.perf_counter() - started < seconds:
        time.sleep(0.05)
    stop.set()
    writer.join()
    gaps = sorted(result[0])
    return {
        "commits": len(gaps),
        "max_gap_ms": round(gaps[-1] * 1000, 1),
        "p99_gap_ms": round(gaps[int(len(gaps) * 0.99)] * 1000, 1),
    }


def _arguments(parser: argparse.ArgumentParser) -> None:
    cli.number(parser, "--entries", int, 40_000, "signed entries appended, then checked")
    cli.number(parser, "--append", int, 100, "entries appended before the incremental check")
    parser.add_argument(
        "--database-url", default=None, help="(default: SQLite in a temporary directory)"
    )


def _run(args: argparse.Namespace) -> int:
    keys = AuditKeys.from_text(new_key_text())
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = open_database(url, audit_keys=keys)
        fill = _fill(db, args.entries)
        verifier = ChainVerifier(keys)
        with db.read() as session:
            started = time.perf_counter()
            full = verify_chain(session, keys)
            full_s = time.perf_counter() - started
            verifier.check(session)
        assert full.ok
        _fill(db, args.append)
        with db.read() as session:
            started = time.perf_counter()
            incremental = verifier.check(session)
            incremental_s = time.perf_counter() - started
        assert incremental.ok and incremental.checked == args.append
        idle = _stall(db, keys, with_check=False, seconds=max(1.0, full_s))
        busy = _stall(db, keys, with_check=True, seconds=max(1.0, full_s))
        db.dispose()
    rows = [
        {"measure": "append", "entries": args.entries, "ms": round(fill * 1000),
         "us_per_entry": round(fill / args.entries * 1e6, 1)},
        {"measure": "full check", "entries": args.entries, "ms": round(full_s * 1000),
         "us_per_entry": round(full_s / args.entries * 1e6, 1)},
        {"measure": "incremental check", "entries": args.append,
         "ms": round(incremental_s * 1000, 1),
         "us_per_entry": round(incremental_s / args.append * 1e6, 1)},
    ]  # fmt: skip
    stalls = [{"writer": "alone", **idle}, {"writer": "during a full check", **busy}]
    print("\n== writer commits (one audited entry per transaction) ==")
    print(table(stalls))
    report("auditcheck", rows, meta={"url": url.split("@")[-1], "writer_stall": stalls})
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main("auditcheck", __doc__, argv, _arguments, _run)


if __name__ == "__main__":
    raise SystemExit(main())
