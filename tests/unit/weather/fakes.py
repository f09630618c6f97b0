"""In-memory stand-ins for a provider and API_Central."""

from __future__ import annotations

from dataclasses import dataclass, field

from weather.errors import CentralRejected, CentralUnavailable, FailureKind, ProviderError


class FakeProvider:
    name = "fake"

    def __init__(self, **answers: float | Exception) -> None:
        self.answers: dict[str, float | Exception] = dict(answers)
        self.calls: list[str] = []
        self.polls = 0

    def start_poll(self) -> None:
        self.polls += 1

    def temperature(self, city: str) -> float:
        self.calls.append(city)
        answer = self.answers.get(city)
        if answer is None:
            raise ProviderError(FailureKind.UNKNOWN_CITY, f"no such city {city}")
        if isinstance(answer, Exception):
            raise answer
        return answer


@dataclass
class FakeCentral:
    alerts: set[str] = field(default_factory=set)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    readings: list[tuple[str, float | None, str, str | None]] = field(default_factory=list)
    raised_at: dict[str, float | None] = field(default_factory=dict)
    down: bool = False
    reject: str | None = None

    def _check(self) -> None:
        if self.down:
            raise CentralUnavailable("API_Central at http://central is unreachable (refused)")
        if self.reject:
            raise CentralRejected(self.reject)

    def raise_alert(self, location: str, temperature_c: float | None) -> None:
        self._check()
        self.calls.append(("raise", location))
        self.alerts.add(location)
        self.raised_at[location] = temperature_c

    def clear_alert(self, location: str) -> None:
        self._check()
        self.calls.append(("clear", location))
        self.alerts.discard(location)

    def post_reading(
        self, location: str, temperature_c: float | None, status: str, reason: str | None
    ) -> None:
        self._check()
        self.calls.append(("reading", location))
        self.readings.append((location, temperature_c, status, reason))

    def commands(self) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[0] != "reading"]
