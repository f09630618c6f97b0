"""Our child processes: start one in its own session with its output in a log file, wait
until it is ready, stop it (its stop signal, then SIGKILL), read its log.

The one process wrapper of the project: the tests and the benchmarks use
:class:`ServiceProcess` as it is; the demo's supervised children
(``demo.supervisor.ProcessChild``) and the embedded broker (``common.infra.broker``)
build on it. Readiness is the service's ready line (:mod:`common.ready`), not its
human-readable output.

EVChargingError
 └── ProcessFailed   a child exited, or did not get there in time (also an AssertionError,
                     so a test that waits on a child fails like any other assertion)
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, NoReturn, Self

from common.errors import EVChargingError
from common.ready import find_ready

__all__ = ["ProcessFailed", "ServiceProcess", "log_tail"]

log = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class ProcessFailed(EVChargingError, AssertionError):
    """A child process exited, or did not get where it was waited for in time.

    The message names the child and ends with the last lines of its output.
    """


def log_tail(path: Path, lines: int = 1, max_bytes: int = 16_384) -> str:
    """The last ``lines`` non-empty lines of a log file, stripped, without terminal colours.

    Only the file's last ``max_bytes`` are read: a log may be large.
    """
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - max_bytes))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    kept = [_ANSI.sub("", line).strip() for line in text.splitlines()]
    return "\n".join([line for line in kept if line][-lines:])


class ServiceProcess:
    """A child process in a session of its own, its stdout and stderr appended to a log.

    Its own session (hence its own process group) means a Ctrl+C at the terminal reaches
    only us, and a signal to the child's group also reaches whatever the child started.
    :meth:`start` may be called again once it has exited (a restart): the log is appended
    to, and :attr:`start_offset` says where the latest start's output begins.

    Args:
        args: the command line, e.g. ``[sys.executable, "-m", "registry", "--port", "0"]``.
        env: variables set on top of ``os.environ`` (``PYTHONUNBUFFERED=1`` is added).
        log_path: where the output goes (appended); ``NAME.log`` if None.
        name: shown in failure messages and log tails.
        stop_signal: what :meth:`stop` sends by default (SIGINT for the embedded broker).
        cwd: the working directory (ours if None).
        inherit_env: False: ``env`` is the whole environment, ``os.environ`` is not used.
        stdin_pipe: stdin is a pipe (see :meth:`send`) rather than ``/dev/null``.
        discard_stdout: stdout goes to ``/dev/null`` (it prints a secret); stderr is logged.
    """

    def __init__(
        self,
        args: Sequence[str],
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        name: str | None = None,
        stop_signal: int = signal.SIGTERM,
        *,
        cwd: Path | None = None,
        inherit_env: bool = True,
        stdin_pipe: bool = False,
        discard_stdout: bool = False,
    ) -> None:
        self.args = list(args)
        self.stop_signal = stop_signal
        self.env = dict(env or {})
        self.name = name or Path(self.args[0]).name
        self.log_path = log_path or Path(f"{self.name}.log")
        self.cwd = cwd
        self.inherit_env = inherit_env
        self.stdin_pipe = stdin_pipe
        self.discard_stdout = discard_stdout
        self.start_offset = 0  # size of the log when the latest start began
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Run the command (again, after an exit).

        Raises:
            OSError: the command cannot be run (no such file, not executable).
        """
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._close_log()
        self._log = self.log_path.open("ab")
        self.start_offset = self._log.tell()
        base = os.environ if self.inherit_env else {}
        try:
            self.process = subprocess.Popen(
                self.args,
                env={**base, "PYTHONUNBUFFERED": "1", **self.env},
                cwd=self.cwd,
                stdin=subprocess.PIPE if self.stdin_pipe else subprocess.DEVNULL,
                stdout=subprocess.DEVNULL if self.discard_stdout else self._log,
                stderr=self._log,
                start_new_session=True,  # a signal to it does not reach us
            )
        except OSError:
            self._close_log()
            raise
        return self

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ProcessFailed(f"{self.name} was never started")
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        """Everything the process has written so far (every start's)."""
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def output_since(self, offset: int) -> str:
        """What was written to the log from byte ``offset`` on."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def tail(self, lines: int = 40) -> str:
        """Its last ``lines`` non-empty lines (see :func:`log_tail`)."""
        return log_tail(self.log_path, lines)

    def _lines_from(self, offset: int, *, to_end: bool) -> tuple[list[str], int, str]:
        """The complete lines written from byte ``offset`` on, the offset after them, and
        the line being written (without its newline yet; it is read again next time).

        With ``to_end`` (the process has exited) that last line is all there will be: it
        counts as complete.
        """
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except OSError:
            return [], offset, ""
        end = len(data) if to_end else data.rfind(b"\n") + 1
        lines = data[:end].decode("utf-8", "replace").splitlines()
        return lines, offset + end, data[end:].decode("utf-8", "replace")

    def wait_ready(
        self,
        service: str,
        timeout: float = 15,
        *,
        where: Mapping[str, str] | None = None,
        count: int = 1,
    ) -> dict[str, str]:
        """Wait until the latest start has announced ``service`` ready; its ready fields.

        Args:
            where: only announcements with these field values count (one worker's).
            count: wait for this many such announcements (a worker serving again after
                a restart announces again); the last one is returned.

        Raises:
            ProcessFailed: time-out, or the process exited first (with the log tail).
        """
        wanted = f"{service} ready" + (f" with {dict(where)}" if where else "")
        if count > 1:
            wanted += f" {count} times"
        deadline = time.monotonic() + timeout
        found: list[dict[str, str]] = []
        position = self.start_offset
        while True:
            running = self.running  # before reading: what it wrote before exiting is read
            # Whole lines only: half a ready line could name half a port.
            lines, position, _ = self._lines_from(position, to_end=not running)
            found += find_ready("\n".join(lines), service, where)
            if len(found) >= count:
                return found[count - 1]
            if not running:
                self._fail(f"exited with code {self.returncode} before announcing {wanted}")
            if time.monotonic() > deadline:
                self._fail(f"did not announce {wanted} within {timeout:g} s")
            time.sleep(0.05)

    def wait_for_line(self, pattern: str, timeout: float = 15) -> re.Match[str]:
        """Wait until a line of the output matches ``pattern``; return the match.

        For what a user reads (a state change, an error); readiness is :meth:`wait_ready`.

        Raises:
            ProcessFailed: time-out, or the process exited first (with the log tail).
        """
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        position = 0  # each poll reads only what was written since the last one
        while True:
            running = self.running  # before reading: what it wrote before exiting is read
            lines, position, partial = self._lines_from(position, to_end=not running)
            for line in [*lines, partial]:  # a prompt may wait without its newline
                match = regex.search(line)
                if match:
                    return match
            if not running:
                self._fail(f"exited with code {self.returncode} before printing /{pattern}/")
            if time.monotonic() > deadline:
                self._fail(f"printed no line matching /{pattern}/ within {timeout:g} s")
            time.sleep(0.05)

    def wait_for_port(self, host: str, port: int, timeout: float = 15) -> None:
        """Wait until ``host:port`` accepts TCP connections.

        Raises:
            ProcessFailed: time-out, or the process exited first (with the log tail).
        """
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
                return
            if not self.running:
                self._fail(f"exited with code {self.returncode} before listening on {port}")
            if time.monotonic() > deadline:
                self._fail(f"did not listen on {host}:{port} within {timeout:g} s")
            time.sleep(0.05)

    def send(self, line: str) -> None:
        """Write ``line`` and a newline to its stdin (``stdin_pipe=True``)."""
        if self.process is None or self.process.stdin is None:
            raise ProcessFailed(f"{self.name} has no stdin pipe (start it with stdin_pipe=True)")
        self.process.stdin.write(line.encode() + b"\n")
        self.process.stdin.flush()

    def wait(self, timeout: float = 15) -> int:
        """Wait for the process to exit by itself; return its exit code.

        Raises:
            ProcessFailed: still running after ``timeout`` s (it is killed), or never started.
        """
        if self.process is None:
            raise ProcessFailed(f"{self.name} was never started")
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._fail(f"still running after {timeout:g} s")

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for it to exit; True if it has (or never started).

        Once the leader has exited, whatever it left in its group is killed, and the log
        closed.
        """
        if self.process is None:
            return True
        try:
            self.process.wait(max(timeout, 0))
        except subprocess.TimeoutExpired:
            return False
        self._killpg(signal.SIGKILL)
        self._close()
        return True

    def send_signal(self, sig: int | None = None) -> None:
        """Send ``sig`` (default ``stop_signal``) to its group if it runs; return at once."""
        if self.running:
            self._killpg(self.stop_signal if sig is None else sig)

    def stop(self, sig: int | None = None, timeout: float = 10) -> int | None:
        """Send ``sig`` (default ``stop_signal``); SIGKILL the group after ``timeout`` s."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            sent = self.stop_signal if sig is None else sig
            self._killpg(sent)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "child did not stop in time, killing it",
                    extra={
                        "fields": {
                            "child": self.name,
                            "pid": self.process.pid,
                            "signal": signal.Signals(sent).name,
                            "waited_s": timeout,
                        }
                    },
                )
                self.kill()
        self._close()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash, as far as the service can tell)."""
        if self.process is not None and self.process.poll() is None:
            self._killpg(signal.SIGKILL)
            self.process.wait()
        self._close()

    def _killpg(self, sig: int) -> None:
        if self.process is None:
            return
        # Gone since it was polled, or its group went with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)

    def _close(self) -> None:
        self._close_log()
        if self.process is not None and self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def _fail(self, message: str) -> NoReturn:
        """Raise with the output's tail; the process is killed and its log closed first,
        so a failed start leaves nothing running and no open file behind."""
        tail = self.tail()
        self.kill()
        raise ProcessFailed(f"{self.name} {message}; last output:\n{tail}")

    def __repr__(self) -> str:
        return f"ServiceProcess({self.name!r}, pid={self.process and self.process.pid})"
