"""The demo's supervisor on fake children and a fake clock: crashes, back-off, stopping."""

from __future__ import annotations

from pathlib import Path

from demo.supervisor import ChildStatus, Notice, Supervisor, backoff_delay
from tests.support.clock import FakeClock


def test_backoff_doubles_up_to_thirty_seconds() -> None:
    assert [backoff_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


class FakeChild:
    def __init__(self, name: str, looping: bool = False) -> None:
        self.name = name
        self.looping = looping
        self.restarts = 0
        self.code: int | None = None
        self.starts = 0
        self.log_path = Path("/nonexistent/log")

    @property
    def running(self) -> bool:
        return self.starts > 0 and self.code is None

    @property
    def pid(self) -> int | None:
        return 100 + self.starts

    def start(self) -> None:
        self.starts += 1
        self.code = None

    def exit_code(self) -> int | None:
        return self.code

    def describe_exit(self, code: int) -> str:
        return f"exited with code {code}"

    def signal_stop(self) -> None:
        self.code = 0

    def wait(self, timeout: float) -> bool:
        return self.code is not None

    def kill(self) -> None:
        self.code = -9


def test_supervisor_reports_a_crash_and_restarts_with_backoff() -> None:
    clock = FakeClock(0.0)
    notices: list[Notice] = []
    sup = Supervisor(notices.append, clock=clock)
    child = FakeChild("central")
    sup.start(child)
    clock.now = 5.0
    child.code = 1
    sup.poll()
    assert notices[-1].level == "error"
    assert notices[-1].text.startswith("exited with code 1; restarting in 1 s")
    assert sup.status() == [ChildStatus("central", False, 1, 1.0)]
    clock.now = 6.0
    sup.poll()
    assert child.starts == 2 and notices[-1].text == "restarted (pid 102)"
    child.code = 1  # again at once: the wait doubles
    sup.poll()
    assert "restarting in 2 s" in notices[-1].text
    clock.now = 7.5
    sup.poll()
    assert child.starts == 2  # not yet
    clock.now = 8.0
    sup.poll()
    assert child.starts == 3
    clock.now = 60.0  # up for a while: the next crash starts the back-off afresh
    child.code = 1
    sup.poll()
    assert "restarting in 1 s" in notices[-1].text


def test_a_looping_child_starts_its_next_round_quietly() -> None:
    clock = FakeClock(0.0)
    notices: list[Notice] = []
    sup = Supervisor(notices.append, clock=clock)
    driver = FakeChild("driver D1", looping=True)
    sup.start(driver)
    driver.code = 0
    sup.poll()
    assert sup.status() == [ChildStatus("driver D1", True, 0, None)]  # between rounds
    clock.now = 1.0
    sup.poll()
    assert driver.starts == 2 and notices == []


def test_a_stopping_supervisor_restarts_nothing() -> None:
    notices: list[Notice] = []
    sup = Supervisor(notices.append, clock=FakeClock(0.0))
    child = FakeChild("web")
    sup.start(child)
    sup.stopping = True
    child.code = 1
    sup.poll()
    assert child.starts == 1 and notices == []
