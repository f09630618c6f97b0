"""Supervised child processes: start, watch, restart with back-off, stop in order.

Each child runs in its own session (hence its own process group), so a Ctrl+C at the
terminal reaches only the demo, which then stops the children in its own order, and
a signal to a child's group also reaches anything that child started.

The supervisor is polled (:meth:`Supervisor.poll`) from the demo's one loop rather
than run in a thread per child: a restart never races a shutdown.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from common import backoff
from common.infra import BrokerError, EmbeddedBroker
from common.procs import ServiceProcess, log_tail

__all__ = [
    "BrokerChild",
    "Child",
    "ChildStatus",
    "Notice",
    "ProcessChild",
    "Supervisor",
    "backoff_delay",
    "stop_all",
]

# A child that ran this long before dying starts its back-off from scratch.
_STABLE_AFTER = 30.0
_MAX_DELAY = 30.0


def backoff_delay(failures: int) -> float:
    """Seconds before restart number ``failures`` (1, 2, 4 ... 30 s).

    A poll loop, not tenacity's: it must also drop a pending restart the moment the
    demo stops (:mod:`common.backoff`).
    """
    return backoff.backoff_delay(failures, first=1.0, cap=_MAX_DELAY)


@dataclass(frozen=True)
class Notice:
    """Something the screen should say about a child."""

    child: str
    text: str
    level: str = "info"  # info | warning | error


@dataclass(frozen=True)
class ChildStatus:
    """A child as the screen shows it."""

    name: str
    running: bool  # also true between two rounds of a looping child
    restarts: int  # after crashes (a looping child's new rounds do not count)
    restart_in: float | None = None  # crashed, to be started again in this many s


class Child(Protocol):
    """What the supervisor needs of a child, a process or the embedded broker."""

    name: str
    restarts: int

    @property
    def running(self) -> bool: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def log_path(self) -> Path: ...

    def start(self) -> None: ...

    def exit_code(self) -> int | None:
        """The exit code once it has exited (None while it runs, or never started)."""

    def describe_exit(self, code: int) -> str:
        """How it ended, in words ("exited with code 1", "killed by SIGKILL")."""

    def signal_stop(self) -> None:
        """Ask it to stop (its own stop signal); return at once."""

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for it to exit; True if it has."""

    def kill(self) -> None:
        """SIGKILL its whole process group and reap it."""


class ProcessChild:
    """A service run as ``args`` with exactly ``env``; stdout and stderr appended to
    ``log_file``. The process itself is a :class:`ServiceProcess` (``service``); this
    adds what the supervisor needs: a restart count and the :class:`Child` interface.

    Args:
        looping: exit code 0 means "round finished", not a crash: start it again at once
            (the demo's drivers run their service file over and over).
        quiet_stdout: stdout to /dev/null (it prints a secret); stderr is logged.
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        log_file: Path,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        looping: bool = False,
        quiet_stdout: bool = False,
    ) -> None:
        self.name = name
        self.looping = looping
        self.restarts = 0
        self.service = ServiceProcess(
            args,
            env,
            log_file,
            name,
            stop_signal,
            cwd=cwd,
            inherit_env=False,
            discard_stdout=quiet_stdout,
        )

    @property
    def args(self) -> list[str]:
        """The command line; edited in place, it applies from the next start."""
        return self.service.args

    @property
    def log_path(self) -> Path:
        return self.service.log_path

    @property
    def start_offset(self) -> int:
        """Size of the log when the latest start began."""
        return self.service.start_offset

    @property
    def pid(self) -> int | None:
        return self.service.process.pid if self.service.process else None

    @property
    def running(self) -> bool:
        return self.service.running

    def start(self) -> None:
        self.service.start()

    def output_since(self, offset: int) -> str:
        """What the child wrote to its log from byte ``offset`` on."""
        return self.service.output_since(offset)

    def exit_code(self) -> int | None:
        return self.service.returncode

    def describe_exit(self, code: int) -> str:
        return _describe_exit(code)

    def signal_stop(self) -> None:
        self.service.send_signal()

    def wait(self, timeout: float) -> bool:
        return self.service.wait_exit(timeout)

    def kill(self) -> None:
        self.service.kill()

    def __repr__(self) -> str:
        return f"ProcessChild({self.name!r}, pid={self.pid})"


@dataclass(eq=False)
class BrokerChild:
    """The embedded broker (Tansu) as a supervised child; it keeps its port on restarts."""

    broker: EmbeddedBroker
    name: str = "broker"
    restarts: int = 0
    looping: bool = False

    @property
    def log_path(self) -> Path:
        return self.broker.log_path or Path("tansu.log")

    @property
    def pid(self) -> int | None:
        return self.broker.pid

    @property
    def running(self) -> bool:
        return self.broker.running

    _error: str | None = None

    def start(self) -> None:
        self._error = None
        try:
            self.broker.start()
        except BrokerError as exc:
            # Counted as an exit: the supervisor reports it and tries again later.
            self._error = str(exc)

    def exit_code(self) -> int | None:
        return None if self.broker.running else 1

    def describe_exit(self, code: int) -> str:
        return f"did not start: {self._error}" if self._error else "stopped"

    def signal_stop(self) -> None:
        pass  # EmbeddedBroker.stop() sends SIGINT and waits; done in wait()

    def wait(self, timeout: float) -> bool:
        self.broker.stop(grace=max(timeout, 0.1))
        return True

    def kill(self) -> None:
        self.broker.stop(grace=0.1)


@dataclass(eq=False)
class _Watch:
    child: Child
    started_at: float = 0.0
    failures: int = 0  # crashes in a row (back-off)
    crashes: int = 0  # crashes in all
    restart_at: float | None = None


class Supervisor:
    """Watches children; reports exits and restarts them with back-off.

    Args:
        notify: called with each :class:`Notice` (from the polling thread).
        clock: monotonic seconds (injected for tests).
    """

    def __init__(
        self, notify: Callable[[Notice], None], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._notify = notify
        self._clock = clock
        self._watches: list[_Watch] = []
        self.stopping = False

    @property
    def children(self) -> list[Child]:
        return [w.child for w in self._watches]

    def start(self, child: Child) -> Child:
        """Start ``child`` and watch it from now on."""
        child.start()
        self._watches.append(_Watch(child, started_at=self._clock()))
        return child

    def status(self) -> list[ChildStatus]:
        """Every child, in start order."""
        out = []
        for watch in self._watches:
            child = watch.child
            between_rounds = watch.restart_at is not None and not watch.failures
            restart_in = None
            if watch.restart_at is not None and watch.failures:
                restart_in = max(0.0, watch.restart_at - self._clock())
            out.append(
                ChildStatus(child.name, child.running or between_rounds, watch.crashes, restart_in)
            )
        return out

    def poll(self) -> None:
        """Notice exits, schedule restarts, run the restarts that are due."""
        if self.stopping:
            return
        now = self._clock()
        for watch in self._watches:
            child = watch.child
            if watch.restart_at is None:
                code = child.exit_code()
                if code is None:
                    continue
                self._exited(watch, code, now)
            elif now >= watch.restart_at:
                watch.restart_at = None
                child.restarts += 1
                watch.started_at = now
                try:
                    child.start()
                except OSError as exc:  # cannot even run it (a file gone): try again later
                    self._notify(Notice(child.name, f"cannot start: {exc}", "error"))
                    watch.failures += 1
                    watch.restart_at = now + backoff_delay(watch.failures)
                    continue
                if watch.failures:
                    self._notify(Notice(child.name, f"restarted (pid {child.pid})"))

    def _exited(self, watch: _Watch, code: int, now: float) -> None:
        child = watch.child
        if code == 0 and getattr(child, "looping", False):
            watch.failures = 0
            watch.restart_at = now + 1.0
            return
        if now - watch.started_at >= _STABLE_AFTER:
            watch.failures = 0
        watch.failures += 1
        watch.crashes += 1
        delay = backoff_delay(watch.failures)
        watch.restart_at = now + delay
        why = child.describe_exit(code)
        last = log_tail(child.log_path)
        text = f"{why}; restarting in {delay:g} s (log: {child.log_path})"
        if last:
            text += f"\n    last line: {last}"
        self._notify(Notice(child.name, text, "error"))


def _describe_exit(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exited with code {code}"


def stop_all(
    tiers: Sequence[Iterable[Child]], grace: float = 10.0, hurry: Callable[[], bool] | None = None
) -> None:
    """Stop children tier by tier: signal a whole tier, wait up to ``grace``, then kill.

    ``hurry()`` turning true (a second Ctrl+C) cuts every remaining wait short.
    """
    for tier in tiers:
        members = list(tier)
        for child in members:
            child.signal_stop()
        deadline = time.monotonic() + grace
        for child in members:
            if isinstance(child, BrokerChild):
                child.wait(0.1 if hurry and hurry() else max(deadline - time.monotonic(), 1.0))
                continue
            while not child.wait(0.1):
                if time.monotonic() > deadline or (hurry is not None and hurry()):
                    child.kill()
                    break
