"""The engine's health as the monitor sees it: observations in, changes out. Pure.

One observation per health check (or pushed by the engine); a change is what gets
reported to Central as ``engine_status {ok, reason}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["EngineHealth", "HealthTracker", "Observation", "assess"]


class Observation(StrEnum):
    OK = "ok"  # health_reply {ok: true}
    KO = "ko"  # health_reply {ok: false} or an engine_status push saying so
    NO_ANSWER = "no_answer"  # no reply within the check period
    UNREACHABLE = "unreachable"  # no link to the engine


@dataclass(frozen=True)
class EngineHealth:
    ok: bool
    reason: str = ""

    def body(self) -> dict[str, object]:
        return {"ok": True} if self.ok else {"ok": False, "reason": self.reason}


_DEFAULT_REASON = {
    Observation.OK: "",
    Observation.KO: "engine KO",
    Observation.NO_ANSWER: "engine not answering",
    Observation.UNREACHABLE: "engine unreachable",
}


def assess(observation: Observation, reason: str = "") -> EngineHealth:
    """What an observation means; a KO keeps the engine's own reason."""
    if observation is Observation.OK:
        return EngineHealth(True)
    if observation is Observation.KO and reason:
        return EngineHealth(False, f"engine KO: {reason}")
    return EngineHealth(False, _DEFAULT_REASON[observation])


class HealthTracker:
    """Remembers the last health; :meth:`observe` returns it when it changed."""

    def __init__(self) -> None:
        self.current: EngineHealth | None = None

    def observe(self, observation: Observation, reason: str = "") -> EngineHealth | None:
        new = assess(observation, reason)
        if new == self.current:
            return None
        self.current = new
        return new

    @property
    def ok(self) -> bool:
        """For heartbeats: healthy until the first check says otherwise."""
        return self.current is None or self.current.ok

    @property
    def reason(self) -> str:
        return "" if self.current is None else self.current.reason
