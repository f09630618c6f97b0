"""``make bench``: every benchmark, one after the other, each writing bench/results/NAME.json.

    python -m bench            # all of them (about 40 minutes on 2 cores)
    python -m bench codec eventpath

Each one is also a module of its own with ``--help`` (``python -m bench.scale --help``);
here they run with the flags below, the figures docs/performance.md reports. Nothing here
is part of ``make test``: figures depend on the machine and on what else it is doing.
"""

from __future__ import annotations

import importlib
import sys
import time

# name: (module, flags). 9,400 CPs is the most this machine holds: its hard open-file
# limit is 20,000 per process and 10,000 CPs with their drivers need 21,256.
SUITE: dict[str, tuple[str, list[str]]] = {
    "codec": ("codec", []),
    "handshake": ("handshake", []),
    "slowclients": ("slowclients", []),
    "auditcheck": ("auditcheck", []),
    "throughput": ("throughput", ["--connections", "1000", "--duration", "60"]),
    "scale": ("scale", ["--cps", "1000,5000,9400,10000", "--duration", "60", "--storm"]),
    "scale-1hz": ("scale", ["--cps", "1000,5000,9400", "--heartbeat-interval", "1"]),
    "eventpath": ("eventpath", ["--cps", "1000", "--rate", "1000", "--seconds", "60"]),
    "board": ("board", ["--cps", "10000", "--rate", "1000", "--seconds", "60"]),
    "eventpath-postgres": (
        "eventpath",
        ["--cps", "1000", "--rate", "1000", "--seconds", "60", "--database", "postgres"],
    ),
    "cluster": ("cluster", ["--processes", "1,2,4", "--cps", "2000", "--kills", "10"]),
}


def main(argv: list[str]) -> int:
    names = argv or list(SUITE)
    unknown = [n for n in names if n not in SUITE]
    if unknown:
        print(f"bench: unknown benchmark {', '.join(unknown)}; choose from {', '.join(SUITE)}")
        return 2
    failed = []
    for name in names:
        module_name, args = SUITE[name]
        print(f"\n### bench.{module_name} {' '.join(args)}", flush=True)
        started = time.monotonic()
        module = importlib.import_module(f"bench.{module_name}")
        code = module.main(args)
        print(f"### bench.{name}: exit {code} after {time.monotonic() - started:.0f} s", flush=True)
        if code:
            failed.append(name)
        if code == 130:
            break
    if failed:
        print(f"bench: {', '.join(failed)} did not finish cleanly (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
