"""Run a service (``ev-registry``, ``python -m central``...) as a real child process in tests."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, NoReturn

__all__ = ["ServiceProcess"]


class ServiceProcess:
    """A child process with its stdout and stderr in a log file.

    Args:
        args: the command line, e.g. ``[sys.executable, "-m", "registry", "--port", "0"]``.
        env: variables set on top of ``os.environ``.
        log_path: where the output goes (appended).
        name: shown in failure messages and log tails.
        stop_signal: what :meth:`stop` sends by default (SIGINT for the embedded broker).
    """

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        name: str | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.args = list(args)
        self.stop_signal = stop_signal
        self.env = dict(env or {})
        self.name = name or Path(self.args[0]).name
        self.log_path = log_path or Path(f"{self.name}.log")
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a signal to it does not reach the test runner
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """Everything the process has written so far."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def wait_for_line(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        """Wait until a line of the output matches ``pattern``; return the match.

        Raises:
            AssertionError: time-out, or the process exited first (with the log tail).
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.output().splitlines():
                match = regex.search(line)
                if match:
                    return match
            if not self.running:
                self._fail(f"exited with code {self.returncode} before printing /{pattern}/")
            if time.monotonic() > deadline:
                self._fail(f"printed no line matching /{pattern}/ within {timeout:g} s")
            time.sleep(0.05)

    def wait_for_port(self, host: str, port: int, timeout: float = 15) -> None:
        """Wait until ``host:port`` accepts TCP connections."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
                return
            if not self.running:
                self._fail(f"exited with code {self.returncode} before listening on {port}")
            if time.monotonic() > deadline:
                self._fail(f"did not listen on {host}:{port} within {timeout:g} s")
            time.sleep(0.05)

    def wait(self, timeout: float = 15) -> int:
        """Wait for the process to exit by itself; return its exit code."""
        assert self.process is not None
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._fail(f"still running after {timeout:g} s")

    def stop(self, sig: int | None = None, timeout: float = 10) -> int | None:
        """Send ``sig`` (default ``stop_signal``); SIGKILL the group after ``timeout`` s."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self._signal(self.stop_signal if sig is None else sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, as far as the service can tell)."""
        if self.process is not None and self.process.poll() is None:
            self._signal(signal.SIGKILL)
            self.process.wait()
        self._close_log()

    def _signal(self, sig: int) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _fail(self, message: str) -> NoReturn:
        """Raise with the output's tail; the process is killed and its log closed first,
        so a failed start leaves nothing running and no open file behind."""
        tail = self.tail()
        self.kill()
        raise AssertionError(f"{self.name} {message}; last output:\n{tail}")

    def __repr__(self) -> str:
        return f"ServiceProcess({self.name!r}, pid={self.process and self.process.pid})"
