"""A fake Central asking a real ``ev-driver`` for a cheap scrypt: no proof leaves the client.

The attack: whoever answers on Central's address picks the scrypt parameters of the
CHALLENGE. With n=2 the driver's proof could be brute-forced offline in no time (every
guess costs a microsecond instead of tens of milliseconds). Clients now refuse parameters
below the production cost before computing anything. The driver here runs without the
suite's test-only ``EV_SCRYPT_MIN_N``, as in production.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from common.protocol import NEED_DATA, Connection, MessageReceived
from common.protocol.messages import MessageType

pytestmark = pytest.mark.integration


class FakeCentral:
    """Answers every HELLO with a CHALLENGE at scrypt ``n``; records the PROOFs it gets."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.hellos = 0
        self.proofs = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> FakeCentral:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            with sock:
                self._talk(sock)

    def _talk(self, sock: socket.socket) -> None:
        conn = Connection(time.time)
        sock.settimeout(10)
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            conn.receive_data(data)
            while (event := conn.next_event()) is not NEED_DATA:
                if not isinstance(event, MessageReceived):
                    continue
                if event.message.type is MessageType.HELLO:
                    self.hellos += 1
                    body = {
                        "nonce": base64.b64encode(os.urandom(24)).decode(),
                        "salt": base64.b64encode(os.urandom(16)).decode(),
                        "n": self.n, "r": 8, "p": 1,
                    }  # fmt: skip
                    sock.sendall(conn.send(MessageType.CHALLENGE, body))
                elif event.message.type is MessageType.PROOF:
                    self.proofs += 1  # what an attacker would take away and brute-force
                    failed = {"reason": "authentication failed"}
                    sock.sendall(conn.send(MessageType.AUTH_FAILED, failed))
                    return
            if out := conn.data_to_send():
                sock.sendall(out)


def run_driver(port: int) -> subprocess.CompletedProcess[str]:
    """``ev-driver list`` against ``port``, in a production environment (no EV_* set)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EV_")}
    env.update(
        EV_DRIVER_SECRET="driver-secret-0123456789", PYTHONPATH=os.environ.get("PYTHONPATH", ".")
    )
    args = [sys.executable, "-m", "driver", "--no-tty", "--id", "D1"]
    args += ["--central", f"127.0.0.1:{port}", "--retry-for", "0", "list"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def cheap() -> Iterator[FakeCentral]:
    with FakeCentral(n=2) as central:
        yield central


def test_a_fake_central_asking_for_a_cheap_hash_gets_no_proof(cheap: FakeCentral) -> None:
    done = run_driver(cheap.port)
    output = done.stdout + done.stderr
    assert done.returncode == 4, output  # authentication refused
    assert cheap.hellos >= 1 and cheap.proofs == 0
    assert "weaker password hash" in output and "n=2" in output
    assert "Traceback" not in output


def test_a_central_at_the_production_cost_gets_its_proof() -> None:
    with FakeCentral(n=2**14) as central:  # what a real Central asks by default
        done = run_driver(central.port)
    assert central.proofs == 1, done.stdout + done.stderr  # the client did its part
    assert done.returncode == 4  # ...and the fake, not knowing the verifier, refused it
