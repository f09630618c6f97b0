"""Login throttling for Central's handshakes: growing delays after failed proofs.

A login is throttled by two keys (see :func:`login_keys`): the principal it claims,
``("id", "monitor:CP1")``, and the address it comes from, ``("ip", "10.0.0.7")``.
Only a *completed* proof that fails counts (:meth:`LoginThrottle.failed`). A HELLO that
never sends its PROOF, or a handshake that times out, guesses nothing: if it counted,
anyone could keep a real charge point out by opening connections in its name and
saying nothing. Such a connection costs the server only a socket until the
handshake timeout closes it.

After a key's free allowance of failures each further failure doubles the delay
before the next proof is checked (``base``, ``2 * base``, ... up to ``cap``) instead of
locking the key out. A lock-out hands the attacker the owner's access: a few wrong
guesses keep the real charge point out for the whole lock-out, again and again. Here
a refused login is not a failure and extends nothing, so the owner waits at most
``cap`` seconds after the attacker's last wrong guess, while guessing stays as slow
as behind a lock-out (one proof per ``cap`` seconds per key, and per address).

The caller asks :meth:`LoginThrottle.wait` right before checking a proof and reports
the outcome with no ``await`` in between, so no reservation is needed: a burst of
proofs on one event loop is checked one at a time and sees each earlier failure.

The state lives in this process; several Central replicas would each count
separately and need a shared store.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["Key", "LoginThrottle", "login_keys"]

Key = tuple[str, str]

ID_SCOPE = "id"
IP_SCOPE = "ip"
MAX_KEYS = 100_000
# 2 ** 64 seconds is past any cap; the bound only keeps the float arithmetic finite.
_MAX_EXPONENT = 64


def login_keys(role: str, principal_id: str, ip: str) -> tuple[Key, Key]:
    """The two keys of a login: ``(("id", "role:id"), ("ip", ip))``.

    The role is part of the id key, so failed guesses at driver ``CP1`` do not delay
    the monitor of ``CP1``.
    """
    return (ID_SCOPE, f"{role}:{principal_id}"), (IP_SCOPE, ip)


@dataclass
class _Entry:
    failures: int
    last: float  # time of the last failure
    until: float  # no proof is checked before this time


class LoginThrottle:
    """Delays the next proof of a key after its free allowance of failures.

    Args:
        clock: monotonic time in seconds (tests pass a fake).
        id_free: failures per principal before any delay.
        ip_free: failures per source address before any delay (one address may be a
            NAT in front of many honest clients, hence more).
        base: the first delay in seconds; each further failure doubles it.
        cap: the longest delay in seconds.
        forget: seconds after its last failure that a key is forgotten (at least
            ``cap``, so forgetting never cuts a delay short).
        max_keys: most keys kept; past it the key whose last failure is oldest goes.

    Raises:
        ValueError: an allowance below 1, a non-positive ``base``, ``cap < base``,
            ``forget < cap`` or ``max_keys < 1``.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        id_free: int = 3,
        ip_free: int = 20,
        base: float = 1.0,
        cap: float = 60.0,
        forget: float = 900.0,
        max_keys: int = MAX_KEYS,
    ) -> None:
        if id_free < 1 or ip_free < 1:
            raise ValueError("free allowances must be >= 1")
        if base <= 0 or cap < base or forget < cap:
            raise ValueError("need 0 < base <= cap <= forget")
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self._clock = clock
        self._free = {ID_SCOPE: id_free, IP_SCOPE: ip_free}
        self._base = base
        self._cap = cap
        self._forget = forget
        self._max_keys = max_keys
        self._lock = threading.Lock()
        # Kept in order of last failure (a failing key moves to the end), so the
        # oldest key is the first one and a sweep stops at the first fresh key.
        self._keys: dict[Key, _Entry] = {}
        self._last_sweep = clock()

    def wait(self, keys: Iterable[Key]) -> int:
        """Whole seconds (rounded up) until every key accepts a proof; 0: it may go now.

        Reserves nothing: call it right before checking the proof, then report the
        outcome with :meth:`failed` or :meth:`succeeded`.
        """
        with self._lock:
            now = self._clock()
            self._maybe_sweep(now)
            delay = 0.0
            for key in keys:
                entry = self._live(key, now)
                if entry is not None:
                    delay = max(delay, entry.until - now)
            return math.ceil(delay) if delay > 0 else 0

    def failed(self, keys: Iterable[Key]) -> None:
        """A completed proof failed: count one failure against each key.

        Raises:
            ValueError: a key whose scope is neither ``"id"`` nor ``"ip"``.
        """
        with self._lock:
            now = self._clock()
            self._maybe_sweep(now)
            for key in keys:
                free = self._free.get(key[0])
                if free is None:
                    raise ValueError(f"unknown throttle scope {key[0]!r}")
                entry = self._live(key, now)
                self._keys.pop(key, None)
                if entry is None:
                    entry = _Entry(failures=0, last=now, until=now)
                    self._make_room()
                entry.failures += 1
                entry.last = now
                if entry.failures >= free:
                    exponent = min(entry.failures - free, _MAX_EXPONENT)
                    entry.until = now + min(self._cap, self._base * 2.0**exponent)
                self._keys[key] = entry  # to the end: the newest failure

    def succeeded(self, keys: Iterable[Key]) -> None:
        """A proof succeeded: forget the failures of its principal (the id key only).

        The address keeps its count: otherwise an attacker holding one valid account
        could log into it now and then to wipe its address's failures.
        """
        with self._lock:
            for key in keys:
                if key[0] == ID_SCOPE:
                    self._keys.pop(key, None)

    def __len__(self) -> int:
        """Number of keys tracked (bounded by recent failures and ``max_keys``)."""
        with self._lock:
            return len(self._keys)

    def _live(self, key: Key, now: float) -> _Entry | None:
        """The key's entry, or None when it has none or it is past ``forget``."""
        entry = self._keys.get(key)
        if entry is not None and now - entry.last > self._forget:
            del self._keys[key]
            return None
        return entry

    def _make_room(self) -> None:
        # An id spray (a new principal per guess) must not grow memory without bound:
        # drop the key whose last failure is oldest. A key that keeps failing, such as
        # the sprayer's own address, is always near the end and stays.
        while len(self._keys) >= self._max_keys:
            del self._keys[next(iter(self._keys))]

    def _maybe_sweep(self, now: float) -> None:
        """Forget idle keys, at most once per ``forget / 10`` s."""
        if now - self._last_sweep < self._forget / 10:
            return
        self._last_sweep = now
        while self._keys:
            key, entry = next(iter(self._keys.items()))
            if now - entry.last <= self._forget:
                break  # ordered by last failure: every later key is fresher
            del self._keys[key]
