"""Test hosts on one machine: Linux network namespaces joined by a bridge.

    with Network(["a", "b", "c"]) as net:
        net["a"].address            # 10.N.0.1, reachable from hosts b and c
        net["b"].run(["ev-cp-engine", ...])   # a command line that runs on host b
        net.cut("b"); net.restore("b")        # unplug and replug host b's cable

Each host is a namespace with its own loopback and one veth "cable" into a bridge in the
root namespace. The bridge has the address 10.N.0.254, so the test itself can reach the
hosts (and only them: the subnet is picked so it overlaps no existing route). Everything
is removed on exit, also when the test fails; leftovers of an interrupted earlier run are
removed on entry. Needs root and iproute2.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType

__all__ = ["Host", "Network", "unavailable_reason"]

PREFIX = "ev3h"  # every namespace and link these tests create starts with it


def _ip(*args: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be made here, or None when they can."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces (CI runs as root)"
    if shutil.which("ip") is None:
        return "needs iproute2's ip command"
    probe = f"{PREFIX}probe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except RuntimeError as exc:
        return f"cannot create a network namespace: {exc}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass(frozen=True)
class Host:
    name: str  # the namespace
    address: str
    cable: str  # its veth end in the root namespace, on the bridge

    def run(self, args: Sequence[str]) -> list[str]:
        """``args`` as a command line that runs on this host."""
        return ["ip", "netns", "exec", self.name, *args]


class Network:
    """Hosts on one bridged /24; see the module docstring."""

    def __init__(self, names: Sequence[str]) -> None:
        tag = f"{PREFIX}{os.getpid() % 10000}"
        self.bridge = f"{tag}br"
        self.subnet = self._free_subnet()
        self.hosts = {
            name: Host(f"{tag}{name}", f"{self.subnet}.{i}", f"{tag}{name}")
            for i, name in enumerate(names, start=1)
        }

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    @staticmethod
    def _free_subnet() -> str:
        taken = _ip("-4", "addr") + _ip("-4", "route")
        candidates = [f"10.{n}.0" for n in range(100, 250)]
        random.shuffle(candidates)
        for subnet in candidates:
            if f"{subnet[:-2]}." not in taken:
                return subnet
        raise RuntimeError("no free 10.N.0.0/24 subnet for the test hosts")

    def __enter__(self) -> Network:
        remove_leftovers()
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.subnet}.254/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            for host in self.hosts.values():
                inside = f"{host.cable}0"
                _ip("netns", "add", host.name)
                _ip("link", "add", host.cable, "type", "veth", "peer", "name", inside)
                _ip("link", "set", inside, "netns", host.name)
                _ip("link", "set", host.cable, "master", self.bridge, "up")
                _ip("-n", host.name, "addr", "add", f"{host.address}/24", "dev", inside)
                _ip("-n", host.name, "link", "set", inside, "up")
                _ip("-n", host.name, "link", "set", "lo", "up")
        except BaseException:
            self.remove()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.remove()

    def cut(self, name: str) -> None:
        """Unplug host ``name``'s cable: its packets go nowhere until :meth:`restore`."""
        _ip("link", "set", self.hosts[name].cable, "down")

    def restore(self, name: str) -> None:
        _ip("link", "set", self.hosts[name].cable, "up")

    def remove(self) -> None:
        for host in self.hosts.values():
            _remove_namespace(host.name)
            _ip("link", "del", host.cable, check=False)
        _ip("link", "del", self.bridge, check=False)


def _remove_namespace(name: str) -> None:
    """Kill whatever still runs in namespace ``name``, then delete it."""
    for pid in _ip("netns", "pids", name, check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", name, check=False)


def remove_leftovers() -> None:
    """Namespaces and links of an earlier run that was killed before it could clean up."""
    for line in _ip("netns", "list", check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            _remove_namespace(name)
    for line in _ip("-o", "link", "show", check=False).splitlines():
        link = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if link.startswith(PREFIX):
            _ip("link", "del", link, check=False)
