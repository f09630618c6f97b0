"""The service file of ``ev-driver run``: one charge per line (pure, no I/O).

    # morning round
    CP1           # charge at CP1 until the vehicle is unplugged
    CP2 5         # charge 5 kWh at CP2
    CP3 7.5

A line is ``CP_ID [TARGET_KWH]``; ``#`` starts a comment anywhere on a line; blank
lines are skipped. A malformed line becomes a :class:`LineProblem` and the rest of the
file is still read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from common.protocol.handshake import valid_principal_id

__all__ = ["LineProblem", "Service", "ServiceFile", "parse_service_file"]


@dataclass(frozen=True)
class Service:
    """One charge to make: at ``cp_id``, up to ``target_kwh`` (None: until unplugged)."""

    line: int
    cp_id: str
    target_kwh: float | None = None


@dataclass(frozen=True)
class LineProblem:
    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class ServiceFile:
    services: tuple[Service, ...]
    problems: tuple[LineProblem, ...]


def parse_service_file(text: str) -> ServiceFile:
    """Parse the whole text of a service file; never raises for its content."""
    services: list[Service] = []
    problems: list[LineProblem] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split("#", 1)[0].split()
        if not fields:
            continue
        try:
            services.append(_service(number, fields))
        except ValueError as exc:
            problems.append(LineProblem(number, str(exc)))
    return ServiceFile(tuple(services), tuple(problems))


def _service(number: int, fields: list[str]) -> Service:
    if len(fields) > 2:
        raise ValueError(f"expected 'CP_ID [KWH]', found {len(fields)} fields: {' '.join(fields)}")
    cp_id = fields[0]
    if not valid_principal_id(cp_id):
        raise ValueError(
            f"{_shorten(cp_id)!r} is not a charge point id (1-32 letters, digits, '-' or '_')"
        )
    if len(fields) == 1:
        return Service(number, cp_id)
    try:
        target = float(fields[1])
    except ValueError:
        raise ValueError(f"target {_shorten(fields[1])!r} is not a number of kWh") from None
    if not math.isfinite(target) or target <= 0:
        raise ValueError(f"target {fields[1]} kWh must be a number greater than 0")
    return Service(number, cp_id, target)


def _shorten(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
