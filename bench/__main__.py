"""``make bench``: the benchmarks built so far.

Only the connection load check exists yet (``bench/connect_check.py``); the load
generator, the bare-server bound and the throughput and event-path benchmarks come
with the benchmarks issue.
"""

from __future__ import annotations

import sys

from bench import connect_check

if __name__ == "__main__":
    print("bench: running the connection load check (the full benchmark suite is not built yet)")
    sys.argv = [sys.argv[0], "--cps", "1000", "--hold", "20"]
    raise SystemExit(connect_check.main())
