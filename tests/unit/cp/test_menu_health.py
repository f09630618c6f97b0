"""Menu parsing and the monitor's view of engine health."""

from __future__ import annotations

import pytest

from common.chargepoint.errors import MenuError
from common.chargepoint.menu import Command
from cp_engine.menu import ENGINE_MENU
from cp_monitor.health import EngineHealth, HealthTracker, Observation, assess
from cp_monitor.menu import MONITOR_MENU


@pytest.mark.parametrize(
    ("line", "command"),
    [
        ("p", Command("plug")),
        ("  UNPLUG ", Command("unplug")),
        ("fault", Command("ko")),
        ("r", Command("request")),
        ("r 7.5", Command("request", 7.5)),
        ("?", Command("help")),
    ],
)
def test_engine_lines(line: str, command: Command) -> None:
    assert ENGINE_MENU.parse(line) == command


def test_monitor_numbers_have_defaults() -> None:
    assert MONITOR_MENU.parse("h") == Command("swallow", 5.0)
    assert MONITOR_MENU.parse("swallow 2") == Command("swallow", 2.0)
    assert MONITOR_MENU.parse("l 30") == Command("lose", 30.0)
    assert MONITOR_MENU.parse("reauth") == Command("reauthenticate")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("", "empty command"),
        ("x", "unknown command 'x'"),
        ("k 5", "ko takes no argument"),
        ("h soon", "'soon' is not a number"),
        ("h -1", "between 0 and 86400"),
        ("h 1 2", "takes one number"),
    ],
)
def test_bad_lines(line: str, error: str) -> None:
    with pytest.raises(MenuError, match=error):
        MONITOR_MENU.parse(line)


def test_on_a_terminal_only_keys_without_numbers_act_at_once() -> None:
    assert MONITOR_MENU.immediate("k") and MONITOR_MENU.immediate("q")
    assert not MONITOR_MENU.immediate("h")  # waits for the number and Enter
    assert not MONITOR_MENU.immediate("z")
    assert all(line.startswith("  ") for line in MONITOR_MENU.help_lines())


def test_health_changes_are_reported_once() -> None:
    tracker = HealthTracker()
    assert tracker.ok and tracker.reason == ""  # unknown counts as OK for heartbeats
    assert tracker.observe(Observation.OK) == EngineHealth(True)
    assert tracker.observe(Observation.OK) is None
    assert tracker.observe(Observation.NO_ANSWER) == EngineHealth(False, "engine not answering")
    assert not tracker.ok and tracker.reason == "engine not answering"
    assert tracker.observe(Observation.NO_ANSWER) is None
    assert tracker.observe(Observation.UNREACHABLE) == EngineHealth(False, "engine unreachable")
    assert tracker.observe(Observation.OK) == EngineHealth(True)


def test_a_ko_keeps_the_engines_reason() -> None:
    assert assess(Observation.KO, "overheating") == EngineHealth(False, "engine KO: overheating")
    assert assess(Observation.KO).reason == "engine KO"
    assert EngineHealth(False, "x").body() == {"ok": False, "reason": "x"}
    assert EngineHealth(True).body() == {"ok": True}
