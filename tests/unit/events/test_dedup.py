"""The de-duplicator: a bounded set of event ids, least recently seen forgotten first."""

from __future__ import annotations

import pytest

from common.events import Deduplicator


def test_first_sight_is_new_and_repeat_is_duplicate() -> None:
    dedup = Deduplicator(capacity=10)
    assert dedup.seen("a") is False
    assert dedup.seen("a") is True
    assert dedup.seen("b") is False
    assert dedup.duplicates == 1
    assert len(dedup) == 2 and "a" in dedup


def test_capacity_forgets_the_least_recently_seen() -> None:
    dedup = Deduplicator(capacity=3)
    for event_id in "abc":
        dedup.seen(event_id)
    assert dedup.seen("a") is True  # touching "a" makes "b" the oldest
    assert dedup.seen("d") is False  # evicts "b"
    assert len(dedup) == 3
    assert "b" not in dedup
    assert dedup.seen("c") is True
    assert dedup.seen("b") is False  # forgotten, so it passes again


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        Deduplicator(capacity=0)
