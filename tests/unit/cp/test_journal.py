"""The metering journal: pure state changes, and atomic, durable files."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from cp_engine.journal import ActiveSupply, Journal, JournalState, SupplyReport

SUPPLY = ActiveSupply("S1", "D1", 0.4, 10.0)


def test_a_supply_goes_from_active_to_unsettled_to_settled() -> None:
    state = JournalState().start(SUPPLY).metered(2.5)
    assert state.active is not None and state.active.kwh == 2.5
    state, report = state.end("unplugged")
    assert state.active is None
    assert report == SupplyReport("S1", "D1", 0.4, 2.5, "unplugged")
    assert report.body() == {"session_id": "S1", "kwh": 2.5, "reason": "unplugged"}
    state, settled = state.settle("S1")
    assert settled == report and state == JournalState()
    assert state.settle("S1") == (state, None)


def test_a_restart_ends_the_active_supply_where_the_meter_was() -> None:
    state, report = JournalState().start(SUPPLY).metered(1.25).recovered()
    assert report is not None and (report.kwh, report.reason) == (1.25, "engine_restart")
    assert state.unsettled == (report,)
    assert JournalState().recovered() == (JournalState(), None)


def test_save_and_load_round_trip_in_a_private_file(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "cp" / "journal.json")
    state, _ = JournalState().start(SUPPLY).metered(3.0).end("fault")
    state = state.start(ActiveSupply("S2", None, 0.5, None, 0.75))
    journal.save(state)
    assert journal.load() == (state, None)
    assert stat.S_IMODE(journal.path.stat().st_mode) == 0o600
    assert [p.name for p in journal.path.parent.iterdir()] == ["journal.json"]
    assert json.loads(journal.path.read_text())["version"] == 1


def test_missing_file_is_an_empty_journal(tmp_path: Path) -> None:
    assert Journal(tmp_path / "journal.json").load() == (JournalState(), None)


def test_an_unreadable_journal_is_kept_aside_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text('{"version": 1, "active": {"oops": 1}')
    state, warning = Journal(path).load()
    assert state == JournalState()
    assert warning is not None and "unreadable" in warning
    [aside] = tmp_path.iterdir()
    assert aside.name.startswith("journal.json.corrupt-")
