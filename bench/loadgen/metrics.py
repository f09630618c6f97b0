"""What the load generator measures: latency histograms, counters, merged windows.

A worker keeps a :class:`Stats` per window and sends its snapshot to the coordinator,
which merges every worker's into a :class:`Window` and sums it up.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Histogram", "Stats", "Window"]


class Histogram:
    """Latencies in log-spaced buckets 2 % wide from 1 µs: O(1) to add, mergeable."""

    GROWTH = 1.02
    BUCKETS = 1200  # 1.02 ** 1200 µs ≈ 5 days
    _LOG = math.log(GROWTH)

    def __init__(self, counts: Sequence[int] | None = None, peak: float = 0.0) -> None:
        self.counts = list(counts) if counts is not None else [0] * self.BUCKETS
        self.peak = peak

    def add(self, seconds: float) -> None:
        micros = seconds * 1e6
        index = int(math.log(micros) / self._LOG) if micros > 1 else 0
        self.counts[min(index, self.BUCKETS - 1)] += 1
        if seconds > self.peak:
            self.peak = seconds

    def merge(self, other: Histogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.peak = max(self.peak, other.peak)

    @property
    def total(self) -> int:
        return sum(self.counts)

    def quantile(self, q: float) -> float:
        """Upper edge (s) of the bucket holding quantile ``q`` (0 when empty)."""
        total = self.total
        if not total:
            return 0.0
        rank = q * total
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank and count:
                return min(self.GROWTH ** (index + 1) / 1e6, self.peak)
        return self.peak

    def ms(self, q: float) -> float:
        return round(1000 * self.quantile(q), 2)


class Stats:
    """One worker's counters for the current window."""

    # The window's counters: reset() zeroes each, snapshot() reports each by name.
    sent: int
    acked: int
    nacked: int
    rejected: int
    dropped: int
    central_errors: int
    denied: int
    authorized: int
    operator_commands: int
    operator_timeouts: int
    telemetry: int
    tickets: int
    COUNTERS = (
        "sent",
        "acked",
        "nacked",
        "rejected",
        "dropped",
        "central_errors",
        "denied",
        "authorized",
        "operator_commands",
        "operator_timeouts",
        "telemetry",
        "tickets",
    )

    def __init__(self) -> None:
        self.connect = Histogram()
        self.reset()

    def reset(self) -> None:
        self.ack = Histogram()
        self.auth = Histogram()
        self.op = Histogram()
        for name in self.COUNTERS:
            setattr(self, name, 0)

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self.COUNTERS}
        for name in ("ack", "auth", "op", "connect"):
            hist = getattr(self, name)
            out[name] = (hist.counts, hist.peak)
        return out


@dataclass
class Window:
    """The load of one measured window, all workers merged."""

    seconds: float
    counters: dict[str, int]
    ack: Histogram
    auth: Histogram
    op: Histogram
    loadgen_cpu_seconds: float

    HISTOGRAMS = ("ack", "auth", "op")

    @classmethod
    def of_part(cls, part: dict[str, Any]) -> Window:
        """One worker's window, from its :meth:`Stats.snapshot` plus seconds and CPU."""
        ack, auth, op = (Histogram(*part[name]) for name in cls.HISTOGRAMS)
        counters = {name: part[name] for name in Stats.COUNTERS}
        return cls(part["seconds"], counters, ack, auth, op, part["cpu"])

    @classmethod
    def merged(cls, windows: list[Window]) -> Window:
        """Windows measured at the same time (workers, load generators) as one."""
        counters = {k: sum(w.counters[k] for w in windows) for k in windows[0].counters}
        hists = []
        for name in cls.HISTOGRAMS:
            merged = Histogram()
            for w in windows:
                merged.merge(getattr(w, name))
            hists.append(merged)
        seconds = max(w.seconds for w in windows)
        cpu = sum(w.loadgen_cpu_seconds for w in windows)
        return cls(seconds, counters, hists[0], hists[1], hists[2], cpu)

    def summary(self) -> dict[str, Any]:
        c = self.counters
        return {
            "rate_msg_s": round(c["acked"] / self.seconds, 1),
            "sent": c["sent"],
            "acked": c["acked"],
            "ack_p50_ms": self.ack.ms(0.50),
            "ack_p99_ms": self.ack.ms(0.99),
            "ack_p999_ms": self.ack.ms(0.999),
            "ack_max_ms": round(1000 * self.ack.peak, 1),
            "auth_n": self.auth.total,
            "auth_p50_ms": self.auth.ms(0.50),
            "auth_p99_ms": self.auth.ms(0.99),
            "op_n": self.op.total,
            "op_p50_ms": self.op.ms(0.50),
            "op_p99_ms": self.op.ms(0.99),
            "nacked": c["nacked"],
            "rejected": c["rejected"],
            "dropped": c["dropped"],
            "central_errors": c["central_errors"],
            "denied": c["denied"],
            "op_failed": c["operator_timeouts"],
            "loadgen_cpu_pct": round(100 * self.loadgen_cpu_seconds / self.seconds, 1),
        }

    @property
    def errors(self) -> int:
        c = self.counters
        keys = ("nacked", "rejected", "dropped", "central_errors", "denied", "operator_timeouts")
        return sum(c[k] for k in keys)
