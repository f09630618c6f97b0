"""Slow clients against a real ``ev-registry``: they must not starve real registrations.

The attack (before the fix): two clients, each opening 16 TLS connections and sending
one header byte every second, held all 16 worker threads, since cheroot's timeout is per
read; real registrations waited more than 20 s. Attackers here come from 127.0.0.2 and
127.0.0.3 (Linux routes all of 127/8 to the loopback), the real clients from 127.0.0.1.
"""

from __future__ import annotations

import concurrent.futures
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from bench.slowloris import SlowClient, can_use_source, closed_by_peer
from tests.integration.test_registry import PROV, Registry, start_registry
from tests.integration.test_registry import registry as registry  # the module's fixture
from tests.support.broker import wait_until

pytestmark = pytest.mark.integration


def _loopback_alias(*addresses: str) -> None:
    """Skip when this machine cannot use the addresses as sources (not Linux, say)."""
    for address in addresses:
        if why := can_use_source(address):
            pytest.skip(why)


def _register_many(reg: Registry, prefix: str, count: int) -> list[int]:
    """``count`` registrations at once from 127.0.0.1; each must answer within 5 s."""

    def one(i: int) -> int:
        body = {"id": f"{prefix}-{i}", "location": "Madrid"}
        headers = {"Authorization": f"Bearer {PROV}"}
        with requests.Session() as http:  # one per thread: a Session is not thread-safe
            response = http.post(
                reg.url + "/api/chargepoints", json=body, headers=headers,
                verify=str(reg.ca), timeout=5,
            )  # fmt: skip
            return response.status_code

    with concurrent.futures.ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_slow_clients_do_not_starve_real_registrations(registry: Registry) -> None:
    _loopback_alias("127.0.0.2", "127.0.0.3")
    with (
        SlowClient(registry.port, "127.0.0.2", 16, ca=registry.ca) as first,
        SlowClient(registry.port, "127.0.0.3", 16, ca=registry.ca) as second,
    ):
        # The attack is on once they hold 8 workers (4 each, their share, with the fix).
        wait_until(lambda: first.held + second.held >= 8, 15, "the slow clients' handshakes")
        started = time.monotonic()
        statuses = _register_many(registry, f"SLOW-{registry.db_url[:6]}", 20)
        took = time.monotonic() - started
        assert statuses == [201] * 20
        # Only their share: the rest of each address's connections wait without a worker.
        assert first.held <= 4 and second.held <= 4
    print(f"20 registrations under attack: {took:.2f} s")


@pytest.fixture
def quick_registry(tmp_path: Path) -> Iterator[Registry]:
    """A registry of its own with a 2 s head deadline, so the test does not wait 10 s."""
    reg = start_registry(tmp_path, f"sqlite:///{tmp_path / 'evcharging.db'}", "--head-timeout", "2")
    try:
        yield reg
    finally:
        assert reg.process.stop() == 0


def test_a_slow_request_head_is_cut_at_the_deadline(quick_registry: Registry) -> None:
    _loopback_alias("127.0.0.2", "127.0.0.3")
    reg = quick_registry
    with (
        SlowClient(reg.port, "127.0.0.2", 6, ca=reg.ca) as tls,
        SlowClient(reg.port, "127.0.0.3", 6) as plain,
    ):
        # Every connection is closed by the server: those in a worker at the head
        # deadline, those waiting for their address's turn at theirs too.
        wait_until(lambda: len(tls.cut) == 6 and len(plain.cut) == 6, 20, "the server's cuts")
        assert tls.held == 4  # the address's share got through the handshake...
        assert max(tls.cut + plain.cut) < 10  # ...and none lived on (it takes 19 min to send)
    assert "request head too slow" in reg.process.output()
    # The workers are free again.
    assert _register_many(reg, "AFTER", 8) == [201] * 8
    assert reg.call("GET", "/api/health").json() == {"status": "ok"}


def test_too_many_connections_from_one_address_are_refused(quick_registry: Registry) -> None:
    reg = quick_registry
    _loopback_alias("127.0.0.4")
    # 4 served at once, 64 more may wait: the 69th and later are closed at accept.
    socks = [
        socket.create_connection(("127.0.0.1", reg.port), source_address=("127.0.0.4", 0))
        for _ in range(72)
    ]
    try:

        def refused() -> int:
            return sum(closed_by_peer(sock) for sock in socks)

        wait_until(lambda: refused() >= 72 - 68, 5, "the connections past the cap refused")
        assert refused() == 72 - 68  # and only those: the others are served or waiting
        # Another address is not affected.
        assert reg.call("GET", "/api/health").status_code == 200
    finally:
        for sock in socks:
            sock.close()
