"""Quick load check: N charge points (monitor + engine) connected at once to one Central.

    python -m bench.connect_check --cps 1000 --hold 20

Starts Central as a real process on a fresh SQLite database, provisions N CPs, connects a
monitor and an engine for each (really authenticated, really encrypted), heart-beats every
second for ``--hold`` seconds, and reports connect time, Central's CPU time and resident
memory, and any NACKed or lost frame. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from common.client import ClientLink, connect
from common.config import HostPort
from common.db import open_database
from common.db.models import ChargePoint, Credential, PrincipalKind
from common.protocol.handshake import Role
from common.protocol.keys import ScryptParams, make_verifier
from common.protocol.messages import MessageType
from common.tcp import free_port
from tests.support.services import ServiceProcess

PARAMS = ScryptParams(n=1024)


def _proc_stats(pid: int) -> tuple[float, int]:
    """CPU seconds (user+system) and resident bytes of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return cpu, rss


def provision(url: str, n: int) -> dict[str, str]:
    db = open_database(url)
    out: dict[str, str] = {}
    with db.transaction() as session:
        for i in range(n):
            cp_id = f"CP{i:05d}"
            secret = secrets.token_urlsafe(32)
            v = make_verifier(secret, PARAMS)
            session.add(
                ChargePoint(id=cp_id, location=f"City{i % 10}", price_eur_kwh=Decimal("0.30"))
            )
            session.add(Credential.of(PrincipalKind.CP, cp_id, v))
            out[cp_id] = secret
    db.dispose()
    return out


async def run(addr: HostPort, creds: dict[str, str], hold: float, pid: int) -> dict[str, float]:
    sem = asyncio.Semaphore(200)
    links: list[tuple[ClientLink, ClientLink]] = []
    sent = 0
    stop = asyncio.Event()

    async def beat(monitor: ClientLink) -> None:
        nonlocal sent
        while not stop.is_set() and not monitor.closed:
            monitor.send(MessageType.HEARTBEAT, {"engine_ok": True})
            sent += 1
            await asyncio.sleep(1.0)

    beats: list[asyncio.Task[None]] = []

    async def one(cp_id: str, secret: str) -> None:
        async with sem:
            monitor = await connect(addr, Role.MONITOR, cp_id, secret=secret, timeout=60)
            engine = await connect(
                addr, Role.ENGINE, cp_id, session_key=monitor.session_key, timeout=60
            )
            links.append((monitor, engine))
            beats.append(asyncio.create_task(beat(monitor)))

    cpu0, _ = _proc_stats(pid)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(c, s) for c, s in creds.items()))
    connect_s = time.perf_counter() - t0
    cpu1, _ = _proc_stats(pid)
    await asyncio.sleep(hold)
    stop.set()
    await asyncio.gather(*beats)
    await asyncio.sleep(1.0)
    cpu2, rss2 = _proc_stats(pid)
    nacked = sum(len(m.rejected) + len(e.rejected) for m, e in links)
    unanswered = sum(m.conn.pending_acks for m, _ in links)
    closed = sum(m.closed or e.closed for m, e in links)
    for monitor, engine in links:
        await engine.close()
        await monitor.close()
    return {
        "cps": len(creds),
        "connections": 2 * len(links),
        "connect_seconds": round(connect_s, 2),
        "central_cpu_seconds_connecting": round(cpu1 - cpu0, 2),
        "heartbeats_sent": sent,
        "central_cpu_percent_while_holding": round(100 * (cpu2 - cpu1) / (hold + 1), 1),
        "central_rss_mib": round(rss2 / 2**20, 1),
        "frames_unacked_at_end": unanswered,
        "frames_rejected": nacked,
        "connections_dropped": closed,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cps", type=int, default=1000)
    parser.add_argument("--hold", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/ev.db"
        print(f"provisioning {args.cps} charge points ...", flush=True)
        creds = provision(url, args.cps)
        port, api = free_port(), free_port()
        central = ServiceProcess(
            [
                sys.executable,
                "-m",
                "central",
                "--listen",
                f"127.0.0.1:{port}",
                "--api",
                f"127.0.0.1:{api}",
                "--no-console",
                "--heartbeat-timeout",
                "10",
                "--log-level",
                "WARNING",
            ],
            env={
                "EV_DATABASE_URL": url,
                "EV_OPERATOR_TOKEN": secrets.token_urlsafe(),
                "EV_SCRYPT_N": str(PARAMS.n),
            },
            log_path=Path(tmp) / "central.log",
            name="central",
        ).start()
        try:
            central.wait_for_line("API_Central on", timeout=60)
            _, rss0 = _proc_stats(central.pid)
            print(f"connecting {args.cps} monitors and {args.cps} engines ...", flush=True)
            result = asyncio.run(run(HostPort("127.0.0.1", port), creds, args.hold, central.pid))
            result["central_rss_mib_idle"] = round(rss0 / 2**20, 1)
            grown = result["central_rss_mib"] - result["central_rss_mib_idle"]
            result["central_rss_kib_per_cp"] = round(grown * 1024 / args.cps, 1)
        finally:
            central.stop()
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
