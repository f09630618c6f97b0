"""How every benchmark reports: a plain table on stdout and a JSON file under bench/results/.

    report("codec", rows, meta={"frame_bytes": 200})

``rows`` is a list of dicts with the same keys (one table row each). The JSON file carries
the rows, ``meta``, and the machine they were measured on, so figures in
docs/performance.md can be traced to a run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as an aligned text table (columns in the first row's key order)."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    cells = [[_fmt(row.get(k, "")) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def report(
    name: str, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any] | None = None
) -> Path:
    """Print ``rows`` as a table under a heading and write bench/results/<name>.json."""
    print(f"\n== {name} ==")
    print(table(rows))
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    doc = {
        "benchmark": name,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "argv": sys.argv[1:],
        "meta": dict(meta or {}),
        "rows": [dict(r) for r in rows],
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"(written to {path.relative_to(RESULTS.parent.parent)})", flush=True)
    return path
