"""Event-path benchmark: a CP state change in Central to a tile on a browser's SSE stream.

    python -m bench.eventpath [--cps 1000] [--rate 1000] [--seconds 30]

Starts the real pieces as processes on 127.0.0.1: the embedded broker (Tansu, topic
created first), Central on a fresh SQLite database publishing through its outbox relay,
and the web dashboard (``python -m web_ui``) consuming ``evcharging.events``. This process
then plays three parts (``bench.eventparts``):

* **generator**: ``--cps`` monitors authenticate with ``common.client.connect`` and
  heart-beat every ``--heartbeat`` s like real monitors. For ``--seconds`` it sends
  ``ENGINE_STATUS`` at ``--rate`` messages/s, round-robin over the CPs, each flipping its CP
  ACTIVATED ⇄ BROKEN; the send time of each change is recorded.
* **browser**: a plain HTTP/1.1 client (``http.client``, its own thread) reads the web UI's
  ``/events`` stream for a view of 1,000 CPs (``size=1000``, the most one page may show)
  and timestamps every row (CP id and state) of each ``snapshot`` and ``update`` as it
  arrives. The web UI coalesces: a page is sent the latest state of its rows a few times
  a second (``frame_interval``, 0.25 s), so that much is added to the path by design.
* **tap**: an ``EventConsumer`` (its own thread) reads the same topic to time the middle of
  the path and to learn each event's ``ts`` (stamped by Central when it records the change).

A change is matched to the first later tile (or event) of its CP showing its new state.
When a CP changes twice before the board pushes its tile, only the last state is shown:
the earlier change counts as ``superseded`` (a browser never sees it, by design), which
the default of one change per CP per second keeps rare. Reported per segment: count and
p50 / p90 / p99 / max milliseconds. The JSON's meta adds the rate achieved, how many changes
reached the stream (``never_shown`` > 0: the path fell behind and the percentiles describe
the head of a backlog), how many events Central recorded in its outbox during the run and
how many were still unpublished at the end, and each process's CPU share during the run.
All clocks are this machine's wall clock, so the segments can be compared. The web UI also
re-reads the board from API_Central every 10 s, so a tile can reach the browser by that
resync instead of through Kafka: end-to-end counts can exceed the tap's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bench import cli
from bench.eventparts import ACTIVATED, BROKEN, VIEW_SIZE, Generator, KafkaTap, Seen, SseReader
from bench.harness import LOAD_SCRYPT, percentile, progress
from bench.procs import (
    CentralHandle,
    Children,
    proc_stats,
    start_central,
)
from bench.report import report
from common.db import open_database
from common.db.models import OutboxRow
from common.db.provision import numbered, provision
from common.db.scratch import scratch_postgres
from common.infra import EmbeddedBroker
from common.procs import ServiceProcess
from common.tcp import free_port

__all__ = ["Generator", "main", "start_web"]

DEFAULT_PG = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"


# ------------------------------------------------------------------ matching
def match(sends: Sequence[Seen], seen: Iterable[Seen]) -> tuple[list[Seen | None], int]:
    """For each send, the first later observation of its CP in its new state (or None).

    Returns the matches (aligned with ``sends``) and how many sends were superseded: a
    later change of the same CP was observed first, so this state was never shown.
    """
    pending: dict[str, deque[int]] = defaultdict(deque)
    for i, send in enumerate(sends):
        pending[send.cp].append(i)
    out: list[Seen | None] = [None] * len(sends)
    superseded = 0
    for obs in sorted(seen):
        queue = pending.get(obs.cp)
        if not queue:
            continue
        for depth, i in enumerate(queue):
            if sends[i].t > obs.t:
                break
            if sends[i].state == obs.state:
                for _ in range(depth):
                    queue.popleft()
                    superseded += 1
                out[queue.popleft()] = obs
                break
    return out, superseded


def _row(segment: str, values_s: Sequence[float]) -> dict[str, Any]:
    ms = [v * 1000 for v in values_s]

    def fmt(value: float) -> float:
        return round(value, 1) if not math.isnan(value) else value

    return {
        "segment": segment,
        "count": len(ms),
        "p50_ms": fmt(percentile(ms, 50)),
        "p90_ms": fmt(percentile(ms, 90)),
        "p99_ms": fmt(percentile(ms, 99)),
        "max_ms": fmt(max(ms) if ms else math.nan),
    }


def segments(sends: Sequence[Seen], tiles: list[Seen], tapped: list[Seen]) -> list[dict[str, Any]]:
    """The latency table: each segment over the changes seen at both of its ends."""
    at_sse, _ = match(sends, tiles)
    at_tap, _ = match(sends, tapped)
    end_to_end = [w.t - s.t for s, w in zip(sends, at_sse, strict=True) if w]
    both = [(s, k, w) for s, k, w in zip(sends, at_tap, at_sse, strict=True) if k and w]
    return [
        _row("change sent -> SSE tile (end to end)", end_to_end),
        _row("change sent -> event ts (Central)", [k.ts - s.t for s, k, _ in both]),
        _row("event ts -> Kafka tap (outbox, relay, broker)", [k.t - k.ts for _, k, _ in both]),
        _row("Kafka tap -> SSE tile (web UI)", [w.t - k.t for _, k, w in both]),
        _row("event ts -> SSE tile", [w.t - k.ts for _, k, w in both]),
    ]


# ------------------------------------------------------------------ the processes
def start_web(
    children: Children, api: str, token: str, bootstrap: str, tmp: Path
) -> tuple[ServiceProcess, int]:
    """``python -m web_ui`` with its production defaults, consuming ``bootstrap``."""
    port = free_port()
    args = [sys.executable, "-m", "web_ui", "--listen", f"127.0.0.1:{port}"]
    args += ["--central-api", api, "--kafka-bootstrap", bootstrap]
    proc = children.add(
        ServiceProcess(
            args,
            env={"EV_OPERATOR_TOKEN": token},
            log_path=tmp / "web.log",
            name="web",
        ).start()
    )
    proc.wait_ready("web", timeout=60)
    return proc, port


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.1)


@dataclass
class _System:
    """The broker, Central and the web UI, running; the browser and the tap attached."""

    central: CentralHandle
    pids: dict[str, int]
    reader: SseReader
    tap: KafkaTap


@contextlib.contextmanager
def _system(url: str, tmp: Path) -> Iterator[_System]:
    """Start everything in order; stop everything on the way out, whatever happens."""
    broker = EmbeddedBroker(log_path=tmp / "tansu.log")
    with Children() as children, contextlib.ExitStack() as stack:
        stack.callback(broker.stop)  # SIGINT, then SIGKILL after a grace
        with progress("starting the broker, Central and the web UI"):
            broker.start()  # creates the topic with its partitions first
            central = start_central(
                children, url, tmp, extra_args=["--kafka-bootstrap", broker.bootstrap]
            )
            web, web_port = start_web(children, central.api, central.token, broker.bootstrap, tmp)
        stack.callback(children.stop_all)  # before the broker: the relay flushes to it
        reader = SseReader("127.0.0.1", web_port).start()
        stack.callback(reader.stop)
        tap = KafkaTap(broker.bootstrap).start()
        stack.callback(tap.stop)
        _wait(reader.snapshot.is_set, 30, "the SSE snapshot")
        assert broker.pid is not None
        pids = {"central": central.proc.pid, "web": web.pid, "broker": broker.pid}
        yield _System(central, pids, reader, tap)


async def _warm_up(gen: Generator, creds: dict[str, str], system: _System) -> None:
    """Connect every monitor; wait until the browser and the tap show every CP ACTIVATED."""
    with progress(f"connecting {len(creds)} monitors"):
        await gen.connect(creds)

    def everywhere() -> bool:
        # The tap too: the web UI's resync can show a state before its event is recorded.
        return all(
            set(creds) <= {t.cp for t in seen if t.state == ACTIVATED}
            for seen in (system.reader.tiles, system.tap.seen)
        )

    with progress("waiting until the stream and the topic show every CP ACTIVATED"):
        await asyncio.to_thread(_wait, everywhere, 120, "every CP's ACTIVATED tile and event")
    await asyncio.sleep(1.0)


def run(
    args: argparse.Namespace, tmp: Path, url: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Everything up, warm up, generate, drain; the latency rows and the run's facts."""
    with progress(f"provisioning {args.cps} CPs"):
        creds = provision(url, numbered("CP", args.cps), params=LOAD_SCRYPT).cps
    with _system(url, tmp) as system:
        reader = system.reader
        gen = Generator(system.central.addr, args.heartbeat)
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(_warm_up(gen, creds, system))
            print(f"sending {args.rate:g} changes/s for {args.seconds:g} s ...", flush=True)
            before = {n: proc_stats(p).cpu_seconds for n, p in system.pids.items()}
            server0 = _postgres_cpu_seconds()
            bench0 = time.process_time()
            took = loop.run_until_complete(gen.run(args.rate, args.seconds))
            cpu = {
                name: round(100 * (proc_stats(pid).cpu_seconds - before[name]) / took, 1)
                for name, pid in system.pids.items()
            }
            cpu["bench"] = round(100 * (time.process_time() - bench0) / took, 1)
            if url.startswith("postgresql"):  # the local server's processes, all of them
                cpu["postgres"] = round(100 * (_postgres_cpu_seconds() - server0) / took, 1)
            with progress(f"draining (up to {args.drain:g} s)"):
                _drain(gen.sends, reader, args.drain)
            drained = datetime.now(UTC)
        finally:
            loop.run_until_complete(gen.close())
            loop.close()
    if system.tap.error is not None:
        print(f"warning: the Kafka tap failed: {system.tap.error!r}", file=sys.stderr)
    sends = gen.sends
    rows = segments(sends, reader.tiles, system.tap.seen)
    at_sse, superseded = match(sends, reader.tiles)
    first = sends[0].t if sends else math.inf
    recorded, unsent = _outbox(url, datetime.fromtimestamp(first, UTC), drained)
    meta = {
        "cps": args.cps,
        "rate_target": args.rate,
        "rate_achieved": round(len(sends) / took, 1),
        "seconds": round(took, 2),
        "heartbeat_s": args.heartbeat,
        "database": make_url(url).get_backend_name(),
        "changes_sent": len(sends),
        "shown_on_sse": sum(1 for m in at_sse if m),
        "superseded_before_shown": superseded,
        "never_shown": sum(1 for m in at_sse if m is None) - superseded,
        "other_states_on_sse_during_run": dict(
            Counter(
                t.state
                for t in reader.tiles
                if first <= t.t <= drained.timestamp() and t.state not in (ACTIVATED, BROKEN)
            )
        ),
        "outbox_rows_recorded_during_run": recorded,
        "events_on_tap": len(system.tap.seen),
        "outbox_rows_of_run_unpublished_at_stop": unsent,
        "sse_messages": dict(reader.counts),
        "sse_reconnects": reader.reconnects,
        "cpu_percent_during_run": cpu,
    }
    return rows, meta


def _postgres_cpu_seconds() -> float:
    """CPU seconds of every process of this machine named postgres (the local server)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            text = stat.read_text()
            if text[text.index("(") + 1 : text.rindex(")")] == "postgres":
                total += proc_stats(int(stat.parent.name)).cpu_seconds
    return total


def _outbox(url: str, since: datetime, until: datetime) -> tuple[int, int]:
    """Events Central recorded between ``since`` and ``until``, and those still unsent."""
    db = open_database(url)
    try:
        with db.transaction() as session:
            count = select(func.count()).select_from(OutboxRow)
            recorded = session.scalar(
                count.where(OutboxRow.created_at >= since, OutboxRow.created_at <= until)
            )
            unsent = session.scalar(
                count.where(OutboxRow.sent_at.is_(None), OutboxRow.created_at <= until)
            )
    finally:
        db.dispose()
    return int(recorded or 0), int(unsent or 0)


def _drain(sends: list[Seen], reader: SseReader, timeout: float) -> None:
    """Wait until every change is on the stream, or nothing new came for 10 s, or timeout."""
    deadline = time.monotonic() + timeout
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        matched, superseded = match(sends, reader.tiles)
        done = sum(1 for m in matched if m) + superseded
        if done >= len(sends):
            return
        if len(reader.tiles) != last:
            last, quiet_since = len(reader.tiles), time.monotonic()
        elif time.monotonic() - quiet_since > 10:
            return
        time.sleep(0.5)


# ------------------------------------------------------------------ main
def change_arguments(parser: argparse.ArgumentParser, *, cps: int, seconds: float) -> None:
    """The flags of a run of state changes (``--cps --rate --seconds --heartbeat``)."""
    cli.number(parser, "--cps", int, cps, "charge points")
    cli.number(parser, "--rate", float, 1000.0, "state changes per second")
    cli.number(parser, "--seconds", float, seconds, "how long to sustain the rate")
    cli.number(parser, "--heartbeat", float, 5.0, "seconds between heartbeats")


def _arguments(parser: argparse.ArgumentParser) -> None:
    change_arguments(parser, cps=1000, seconds=30.0)
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="Central's database: a fresh SQLite file (default), or a fresh database on the "
        f"PostgreSQL server at EV_BENCH_POSTGRES_URL (default {DEFAULT_PG}), dropped after",
    )
    cli.number(
        parser, "--drain", float, 20.0, "seconds to wait afterwards for the stream to catch up"
    )
    cli.workdir_argument(parser)


def _run(args: argparse.Namespace) -> int:
    cli.positive(args, "cps", "rate", "seconds", "heartbeat")
    if args.cps > VIEW_SIZE:
        raise cli.UsageError(
            f"--cps: at most {VIEW_SIZE} (the stream follows one page of the board)"
        )
    with contextlib.ExitStack() as stack:
        workdir = stack.enter_context(cli.work_directory(args.workdir, "bench-eventpath-"))
        if args.database == "postgres":
            admin = os.environ.get("EV_BENCH_POSTGRES_URL", DEFAULT_PG)
            url = stack.enter_context(scratch_postgres(admin, prefix="ev_bench"))
        else:
            url = f"sqlite:///{workdir}/ev.db"
        rows, meta = run(args, workdir, url)
    report(f"eventpath_{args.database}", rows, meta)
    lost = meta["never_shown"]
    if lost > 0.01 * meta["changes_sent"]:
        print(
            f"WARNING: the path did not keep up: {lost} of {meta['changes_sent']} changes never "
            f"reached the stream within --drain {args.drain:g} s; the figures describe the "
            "earliest changes of a growing backlog. Try a lower --rate.",
            flush=True,
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    return cli.main("eventpath", __doc__, argv, _arguments, _run)


if __name__ == "__main__":
    raise SystemExit(main())
