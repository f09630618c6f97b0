"""What the demo prints: the status line and the summary of this run."""

from __future__ import annotations

from typing import Any

from demo.screen import Status, stats_since, status_line, summary_lines
from demo.supervisor import ChildStatus


def test_status_and_summary_say_what_a_user_needs() -> None:
    stats = {
        "sessions_finished": 3,
        "energy_kwh": 7.5,
        "revenue_eur": 2.6,
        "per_cp": [{"cp_id": "CP1", "sessions": 1, "kwh": 7.5, "eur": 2.6}],
    }
    cps: list[dict[str, Any]] = [
        {"id": "CP1", "state": "SUPPLYING", "session": {"driver_id": "D1"}},
        {"id": "CP2", "state": "ACTIVATED", "session": None},
    ]
    children = [ChildStatus("central", False, 1, 4.0), ChildStatus("web", True, 0)]
    line = status_line(Status(10, None, children, cps, stats))
    assert "1 ACTIVATED, 1 SUPPLYING" in line
    assert "charging CP1→D1" in line
    assert "3 sessions finished, 7.500 kWh, 2.60 €" in line
    assert "central restarting in 4 s" in line
    summary = summary_lines(stats, 61.2, "--duration reached")
    assert summary[:4] == [
        "Summary after 61 s (--duration reached):",
        "  Sessions finished: 3",
        "  Energy: 7.500 kWh",
        "  Revenue: 2.60 €",
    ]
    assert "CP1" in summary[4] and "1 session " in summary[4]
    assert summary_lines(None, 1, "x")[1].startswith("  totals unavailable")


def test_the_summary_counts_this_run_only() -> None:
    before = {
        "sessions_finished": 2,
        "energy_kwh": 5.0,
        "revenue_eur": 1.75,
        "per_cp": [{"cp_id": "CP1", "sessions": 2, "kwh": 5.0, "eur": 1.75}],
    }
    after = {
        "sessions_finished": 4,
        "energy_kwh": 9.5,
        "revenue_eur": 3.64,
        "active_sessions": 0,
        "per_cp": [
            {"cp_id": "CP1", "sessions": 2, "kwh": 5.0, "eur": 1.75},
            {"cp_id": "CP2", "sessions": 2, "kwh": 4.5, "eur": 1.89},
        ],
    }
    delta = stats_since(before, after)
    assert (delta["sessions_finished"], delta["energy_kwh"], delta["revenue_eur"]) == (2, 4.5, 1.89)
    assert delta["per_cp"] == [{"cp_id": "CP2", "sessions": 2, "kwh": 4.5, "eur": 1.89}]
    assert stats_since(None, after) is after
