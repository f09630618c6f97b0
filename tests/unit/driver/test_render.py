"""What the driver prints: numbers, lines and tables (rendered as plain text)."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator

import pytest
from rich.console import Console, RenderableType

from driver.charge import Outcome, OutcomeKind, Progress
from driver.render import (
    cp_table,
    format_elapsed,
    history_table,
    outcome_table,
    progress_line,
    session_line,
    ticket_line,
)

TICKET = {
    "session_id": "s-1",
    "cp_id": "CP1",
    "driver_id": "D1",
    "start": "2026-05-04T08:00:01+00:00",
    "end": "2026-05-04T08:04:30+00:00",
    "kwh": 2.5,
    "price_eur_kwh": 0.4,
    "total_eur": 1.0,
    "reason": "unplugged",
}


def text(renderable: RenderableType) -> str:
    out = io.StringIO()
    Console(file=out, width=120, no_color=True).print(renderable)
    return out.getvalue()


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "00:00"), (0.99, "00:00"), (12.4, "00:12"), (59 * 60 + 59, "59:59"), (3600, "1:00:00"),
     (3 * 3600 + 62, "3:01:02"), (-5, "00:00")],
)  # fmt: skip
def test_format_elapsed(seconds: float, shown: str) -> None:
    assert format_elapsed(seconds) == shown


def test_progress_line() -> None:
    line = progress_line(Progress("CP1", 11.0, 2.345, 0.938, 12.7))
    assert line == "charging CP1: 11.0 kW 2.345 kWh 0.94 € 00:12"


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC for the test (times are shown in local time)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.mark.usefixtures("utc")
def test_ticket_line_in_local_time() -> None:
    assert ticket_line(TICKET) == (
        "ticket CP1: 2.500 kWh x 0.40 €/kWh = 1.00 € (unplugged) 08:00:01-08:04:30 session s-1"
    )
    # A charge never plugged in has no start; missing numbers show as "-".
    bare = {"cp_id": "CP2", "session_id": "s-2", "end": "2026-05-04T08:00:00+00:00"}
    assert ticket_line(bare) == "ticket CP2: - x ? €/kWh = - 08:00:00 session s-2"


def test_session_line() -> None:
    running = {"session_id": "s", "cp_id": "CP1", "status": "supplying", "kwh": 2, "eur": 0.8}
    assert session_line(running) == "charging at CP1: 2.000 kWh 0.80 € so far (session s)"
    waiting = {"session_id": "s", "cp_id": "CP1", "status": "authorized"}
    assert session_line(waiting) == "authorised at CP1, waiting for the vehicle (session s)"


def test_outcome_table_has_a_row_per_service_and_totals() -> None:
    table = text(
        outcome_table(
            [
                (2, Outcome("CP1", OutcomeKind.CHARGED, "unplugged", 2.5, 1.0, "s1")),
                (3, Outcome("GHOST", OutcomeKind.DENIED, "unknown charge point")),
                (5, Outcome("CP2", OutcomeKind.CHARGED, "target_reached", 5.0, 2.25, "s2")),
                (6, Outcome("CP1", OutcomeKind.GAVE_UP, "vehicle not plugged in within 9 s")),
                (7, Outcome("CP2", OutcomeKind.NOT_RUN)),
            ]
        )
    )
    rows = [
        " ".join(line.replace("│", " ").replace("┃", " ").split()) for line in text_lines(table)
    ]
    assert rows == [
        "Services",
        "line CP outcome kWh €",
        "2 CP1 ticket (unplugged) 2.500 1.00",
        "3 GHOST denied: unknown charge point - -",
        "5 CP2 ticket (target_reached) 5.000 2.25",
        "6 CP1 gave up: vehicle not plugged in within 9 s - -",
        "7 CP2 not run - -",
        "total 2/5 charged 7.500 3.25",
    ]


@pytest.mark.usefixtures("utc")
def test_cp_and_history_tables() -> None:
    cps = text(cp_table([{"id": "CP1", "location": "Madrid", "price_eur_kwh": 0.35}]))
    assert "CP1" in cps and "Madrid" in cps and "0.35 €/kWh" in cps
    history = text(history_table([TICKET]))
    row = " ".join(text_lines(history)[-1].replace("│", " ").split())
    assert row == "2026-05-04 08:04:30 CP1 2.500 0.40 €/kWh 1.00 € unplugged"


def text_lines(rendered: str) -> list[str]:
    """The lines that hold words (no box-drawing rules)."""
    return [line for line in rendered.splitlines() if any(c.isalnum() for c in line)]
