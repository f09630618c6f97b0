"""Horizontal bar charts as geometry, drawn as inline SVG by ``_chart.html``.

Written here rather than taken from a library: a bar chart is a few lines of arithmetic,
and the page must not fetch anything at run time (no CDN) nor run script to draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bar", "Chart", "bar_chart", "top_n"]

LABEL_WIDTH = 130  # room for "2026-11-21" or a CP id, left of the bars
VALUE_WIDTH = 110  # room for the value, right of the longest bar


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str  # the value as shown, with its unit
    y: float
    width: float


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    bars: tuple[Bar, ...]
    width: int
    height: int
    bar_height: int
    label_width: int = LABEL_WIDTH

    @property
    def empty(self) -> bool:
        return not self.bars

    @property
    def description(self) -> str:
        """The data in words, for screen readers."""
        return "; ".join(f"{b.label}: {b.text}" for b in self.bars) or "no data yet"


def bar_chart(
    points: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str,
    decimals: int = 2,
    width: int = 640,
    bar_height: int = 26,
    gap: int = 8,
) -> Chart:
    """One bar per ``(label, value)``, longest bar for the largest value.

    Negative values are drawn as empty bars (there are none in revenue or energy).
    """
    top = max((value for _, value in points), default=0.0)
    room = width - LABEL_WIDTH - VALUE_WIDTH
    bars = tuple(
        Bar(
            label=label,
            value=value,
            text=f"{value:,.{decimals}f} {unit}",
            y=gap + i * (bar_height + gap),
            width=round(room * max(value, 0.0) / top, 1) if top > 0 else 0.0,
        )
        for i, (label, value) in enumerate(points)
    )
    height = gap + len(bars) * (bar_height + gap)
    return Chart(title, unit, bars, width, max(height, bar_height + 2 * gap), bar_height)


def top_n(
    points: Sequence[tuple[str, float]], n: int, rest: str = "the {count:,} others"
) -> list[tuple[str, float]]:
    """The ``n`` largest ``(label, value)`` pairs, largest first, then the rest as one bar.

    A chart of thousands of charge points is unreadable; their ten best and the sum of
    the others says what matters and still adds up to the total.
    """
    ordered = sorted(points, key=lambda p: (-p[1], p[0]))
    if len(ordered) <= n + 1:
        return ordered
    others = ordered[n:]
    return [*ordered[:n], (rest.format(count=len(others)), sum(v for _, v in others))]
