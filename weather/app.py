"""The weather office: poll every location, decide, tell API_Central, never lose an alert.

One poll, for each watched location in turn:

1. ask the provider (unless a 429 told us to wait) → a temperature, or UNKNOWN and why;
2. :func:`weather.decision.decide` → the verdict and the alert Central should hold;
3. if Central has not confirmed that alert yet, raise or clear it (retried every poll
   until Central confirms, so a change made while Central is down is not lost);
4. post the reading (``ok`` with the temperature, or ``UNKNOWN`` with the reason).

When API_Central is unreachable the rest of the poll skips it: one log line when it goes
away, one when it is back. Time is injected (``clock``, ``wait``): tests do not sleep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from common.backoff import backoff_delay
from weather.decision import INITIAL, Command, Status, Verdict, command_for, decide
from weather.errors import (
    CentralRejected,
    CentralUnavailable,
    FailureKind,
    ProviderError,
    RateLimited,
)
from weather.locations import LocationBook
from weather.providers import Provider

__all__ = ["CentralPort", "LocationState", "WeatherOffice"]

log = logging.getLogger(__name__)

READING_OK = "ok"
READING_UNKNOWN = "UNKNOWN"


class CentralPort(Protocol):
    """What the office needs from API_Central (:class:`weather.central_client.CentralClient`)."""

    def raise_alert(self, location: str, temperature_c: float | None) -> None: ...

    def clear_alert(self, location: str) -> None: ...

    def post_reading(
        self, location: str, temperature_c: float | None, status: str, reason: str | None
    ) -> None: ...


@dataclass
class LocationState:
    """What the office knows about one location."""

    verdict: Verdict = INITIAL
    confirmed: bool | None = None  # the alert Central last confirmed holding (None: unknown)
    temperature_c: float | None = None
    reason: str | None = None
    failure: FailureKind | None = None
    rate_limited: int = 0  # consecutive 429 answers, for exponential back-off
    not_before: float = 0.0  # clock time before which the provider is not asked
    backoff_reason: str | None = None
    trigger_c: float | None = None  # the reading that decided the wanted alert

    def to_dict(self, location: str) -> dict[str, Any]:
        return {
            "location": location,
            "status": str(self.verdict.status),
            "temperature_c": self.temperature_c,
            "reason": self.reason,
            "alert": self.verdict.alert,
            "delivered": command_for(self.verdict.alert, self.confirmed) is None,
        }


class WeatherOffice:
    """Polls a provider for every location in ``book`` and keeps API_Central told.

    Args:
        provider: where temperatures come from.
        central: API_Central (or a fake).
        book: the watched locations.
        hysteresis: degrees above 0 °C a location must reach before its alert clears.
        interval: seconds from the start of one poll to the start of the next.
        max_backoff: longest wait after repeated 429s without ``Retry-After``.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        provider: Provider,
        central: CentralPort,
        book: LocationBook,
        *,
        hysteresis: float = 1.0,
        interval: float = 4.0,
        max_backoff: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if hysteresis < 0:
            raise ValueError("hysteresis must be 0 or more")
        self.provider = provider
        self.central = central
        self.book = book
        self.hysteresis = hysteresis
        self.interval = interval
        self.max_backoff = max_backoff
        self._clock = clock
        self._states: dict[str, LocationState] = {}
        self._lock = threading.Lock()
        self._central_problem: str | None = None  # why Central is unreachable, while it is
        self._outage_logged = False
        self._refusals: set[str] = set()

    # -- reading ------------------------------------------------------------------
    def snapshot(self) -> list[dict[str, Any]]:
        """Every watched location's state, in watch order (for the menu and ``/locations``)."""
        names = self.book.names()
        with self._lock:
            return [self._states.get(n, LocationState()).to_dict(n) for n in names]

    def state(self, location: str) -> LocationState | None:
        with self._lock:
            return self._states.get(location)

    # -- the loop -----------------------------------------------------------------
    def run(self, wait: Callable[[float], bool]) -> None:
        """Poll every ``interval`` until ``wait(seconds)`` returns True (stop requested)."""
        while True:
            started = self._clock()
            try:
                self.poll()
            except Exception:
                log.exception("poll failed; trying again at the next one")
            if wait(max(0.0, started + self.interval - self._clock())):
                return

    def poll(self) -> None:
        """One round over every watched location."""
        self.book.refresh()
        names = self.book.names()
        self._forget_unwatched(names)
        self.provider.start_poll()
        central_up = True
        for name in names:
            state = self._observe(name)
            if central_up:
                central_up = self._deliver(name, state)
        if not central_up:
            self._log_outage()

    # -- steps --------------------------------------------------------------------
    def _observe(self, name: str) -> LocationState:
        with self._lock:
            state = self._states.setdefault(name, LocationState())
        now = self._clock()
        temperature: float | None = None
        failure: FailureKind | None = None
        reason: str | None = None
        if now < state.not_before:
            failure, reason = FailureKind.RATE_LIMITED, state.backoff_reason
        else:
            try:
                temperature = self.provider.temperature(name)
                state.rate_limited = 0
            except RateLimited as exc:
                delay = self._backoff(exc.retry_after, state.rate_limited)
                state.rate_limited += 1
                state.not_before = now + delay
                state.backoff_reason = f"{exc.reason}; next try in {delay:g} s"
                failure, reason = exc.kind, state.backoff_reason
            except ProviderError as exc:
                failure, reason = exc.kind, exc.reason
            except Exception as exc:  # a bug in a provider must not stop the office
                log.exception("provider failed unexpectedly", extra={"fields": {"location": name}})
                failure, reason = FailureKind.NO_DATA, f"internal error ({type(exc).__name__})"
        with self._lock:
            previous = state.verdict
            state.verdict = decide(previous, temperature, self.hysteresis)
            if state.verdict.alert != previous.alert:
                state.trigger_c = temperature
            state.temperature_c, state.failure = temperature, failure
            old_reason, state.reason = state.reason, reason
        self._log_change(name, previous, state, old_reason)
        return state

    def _backoff(self, retry_after: float | None, failures: int) -> float:
        if retry_after is not None:
            return max(0.0, retry_after)
        # One poll interval, then doubling up to max_backoff: ``failures`` 429s came before.
        return backoff_delay(failures + 1, first=self.interval, cap=self.max_backoff)

    def _deliver(self, name: str, state: LocationState) -> bool:
        """Tell Central; returns False when Central is unreachable (skip it this poll)."""
        wanted = state.verdict.alert
        command = command_for(wanted, state.confirmed)
        try:
            fields = {"location": name, "temperature_c": state.trigger_c}
            if command is Command.RAISE:
                self.central.raise_alert(name, state.trigger_c)
                log.warning("cold alert raised", extra={"fields": fields})
            elif command is Command.CLEAR:
                self.central.clear_alert(name)
                log.info("cold alert cleared", extra={"fields": fields})
            if command is not None:
                with self._lock:
                    state.confirmed = wanted
            status = READING_UNKNOWN if state.temperature_c is None else READING_OK
            self.central.post_reading(name, state.temperature_c, status, state.reason)
        except CentralUnavailable as exc:
            if self._central_problem is None:
                self._central_problem = str(exc)
            return False
        except CentralRejected as exc:
            # Retried at every poll like any undelivered change, but said once.
            if str(exc) not in self._refusals:
                self._refusals.add(str(exc))
                log.error(str(exc), extra={"fields": {"location": name}})
        else:
            self._refusals.clear()
        if self._central_problem is not None:
            if self._outage_logged:
                log.info("API_Central reachable again")
            self._central_problem, self._outage_logged = None, False
        return True

    def _log_outage(self) -> None:
        if self._central_problem is None or self._outage_logged:
            return
        with self._lock:
            pending = [
                n for n, s in self._states.items() if command_for(s.verdict.alert, s.confirmed)
            ]
        log.warning(
            "%s; retrying at every poll",
            self._central_problem,
            extra={"fields": {"pending_alert_changes": ", ".join(pending) or "none"}},
        )
        self._outage_logged = True

    def _forget_unwatched(self, names: list[str]) -> None:
        with self._lock:
            for gone in set(self._states) - set(names):
                state = self._states.pop(gone)
                if state.confirmed or state.verdict.alert:
                    log.warning(
                        "location no longer watched; its alert stays until an operator "
                        "clears it (DELETE /api/weather/alerts/<location>)",
                        extra={"fields": {"location": gone}},
                    )

    def _log_change(
        self, name: str, previous: Verdict, state: LocationState, old_reason: str | None
    ) -> None:
        fields: dict[str, Any] = {"location": name}
        if state.temperature_c is not None:
            fields["temperature_c"] = state.temperature_c
        if state.verdict.status is Status.UNKNOWN:
            if state.reason != old_reason:
                log.warning("no temperature", extra={"fields": {**fields, "reason": state.reason}})
        elif previous.status is not state.verdict.status:
            log.info(f"location {state.verdict.status}", extra={"fields": fields})
        log.debug("reading", extra={"fields": {**fields, "status": state.verdict.status}})
