"""OCPP 1.6J onto Central's model, the pure part: no sockets, no clock, no domain state.

What a charger says is read here into what Central's domain understands: a connector
status into a change of health or availability (:func:`status_effect`), meter values
into kWh and kW (:func:`read_meter`), a stop reason into a ticket's reason
(:func:`stop_reason`), a schema failure into the CallError code the 1.6 spec names
(:func:`call_error`), and the HTTP Basic credentials of the WebSocket upgrade
(:func:`parse_basic`). Everything else of OCPP's wire format (frames, schemas, payload
classes) is the ``ocpp`` package's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaError
from ocpp.exceptions import (
    FormationViolationError,
    OccurenceConstraintViolationError,
    OCPPError,
    PropertyConstraintViolationError,
    ProtocolError,
    TypeConstraintViolationError,
)

from common.protocol.messages import PRINCIPAL_ID

__all__ = [
    "ID_TAG_LENGTH",
    "PATH",
    "SUBPROTOCOL",
    "Effect",
    "Meter",
    "call_error",
    "charge_box_id",
    "id_tag",
    "parse_basic",
    "read_meter",
    "status_effect",
    "stop_reason",
    "transaction_id",
]

SUBPROTOCOL = "ocpp1.6"
PATH = re.compile(r"/ocpp/([^/?#]+)/?")
ID_TAG_LENGTH = 20  # CiString20Type: an idTag is at most 20 characters
_MAX_TRANSACTION_ID = 2**31 - 1  # chargers keep it in an int32


class Effect(StrEnum):
    """What a StatusNotification means for the CP's state (docs/ocpp.md, state mapping)."""

    OPERATIVE = "operative"  # Available, Preparing, Charging...: healthy, in service
    FAULTED = "faulted"  # Faulted: BROKEN, a running supply ends now
    UNAVAILABLE = "unavailable"  # Unavailable: STOPPED (unless Central asked for it)
    IGNORED = "ignored"  # a connector other than 0 and 1, or a status not in 1.6


_OPERATIVE = frozenset(
    {"Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Reserved"}
)


def status_effect(connector_id: int, status: str) -> Effect:
    """Map one StatusNotification onto an :class:`Effect`.

    A Central CP has one connector: connector 1 is it, connector 0 is the whole
    charger. Other connectors of a multi-connector charger are not modelled.
    """
    if connector_id not in (0, 1):
        return Effect.IGNORED
    if status in _OPERATIVE:
        return Effect.OPERATIVE
    if status == "Faulted":
        return Effect.FAULTED
    if status == "Unavailable":
        return Effect.UNAVAILABLE
    return Effect.IGNORED


@dataclass(frozen=True)
class Meter:
    """The last energy register and power of one MeterValues (or None: not reported)."""

    wh: Decimal | None
    w: Decimal | None


_ENERGY = "Energy.Active.Import.Register"
_POWER = "Power.Active.Import"
_UNIT_FACTOR = {"Wh": Decimal(1), "kWh": Decimal(1000), "W": Decimal(1), "kW": Decimal(1000)}


def _number(text: Any) -> Decimal:
    try:
        value = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{text!r} is not a finite, non-negative number")
    return value


def read_meter(meter_value: Iterable[Mapping[str, Any]]) -> Meter:
    """The latest whole-charger energy register (Wh) and active power (W) in meter values.

    ``meter_value`` is the (snake_case) list of a MeterValues request. Samples of one
    phase, of another measurand or in signed form are skipped; the measurand defaults
    to the energy register and the unit to Wh (or W), as in the spec.

    Raises:
        ValueError: a value that is not a finite, non-negative number, or a unit that
            does not fit its measurand.
    """
    wh = w = None
    for reading in meter_value:
        for sample in reading.get("sampled_value") or ():
            if sample.get("phase") or sample.get("format") == "SignedData":
                continue
            measurand = sample.get("measurand", _ENERGY)
            if measurand not in (_ENERGY, _POWER):
                continue
            unit = sample.get("unit", "Wh" if measurand == _ENERGY else "W")
            allowed = ("Wh", "kWh") if measurand == _ENERGY else ("W", "kW")
            if unit not in allowed:
                raise ValueError(f"{measurand} in {unit!r}: expected {' or '.join(allowed)}")
            value = _number(sample.get("value")) * _UNIT_FACTOR[unit]
            if measurand == _ENERGY:
                wh = value
            else:
                w = value
    return Meter(wh, w)


def transaction_id(session_id: str) -> int:
    """The OCPP transactionId of a Central session: a stable number from its id.

    Derived rather than stored, so the same session always has the same number
    (across reconnections); collisions matter only between the few transactions of
    one charger, and 31 bits make them practically impossible.
    """
    digest = hashlib.sha256(session_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") % _MAX_TRANSACTION_ID + 1


def id_tag(driver_id: str) -> str:
    """The idTag that stands for a driver in RemoteStartTransaction (20 characters at most)."""
    return driver_id[:ID_TAG_LENGTH]


# StopTransaction's reason (absent means Local) -> the ticket's reason.
_REASONS = {
    "EVDisconnected": "unplugged",
    "Local": "stopped_at_charger",
    "Remote": "stopped",
    "EmergencyStop": "emergency_stop",
    "PowerLoss": "power_loss",
    "Reboot": "reboot",
    "HardReset": "reset",
    "SoftReset": "reset",
    "UnlockCommand": "unlocked",
    "DeAuthorized": "deauthorized",
    "Other": "other",
}


def stop_reason(reason: str | None, asked: str | None = None) -> str:
    """The ticket's reason for a StopTransaction.

    Args:
        reason: the charger's ``reason`` (None: Local, as the spec says).
        asked: why Central sent RemoteStopTransaction for it, if it did
            (``target_reached``, ``stopped_by_operator``...): a Remote stop says that.
    """
    if reason in (None, "Remote") and asked:
        return asked
    return _REASONS.get(reason or "Local", "other")


def call_error(error: SchemaError) -> OCPPError:
    """The CallError OCPP 1.6 (section 4.2.3, errata names) gives a schema failure.

    The ``ocpp`` package answers with 2.0.1's ``FormatViolation`` and a generic mapping;
    a 1.6 charger expects these codes.
    """
    where = "/".join(str(part) for part in error.absolute_path) or "payload"
    cause = {"cause": f"{where}: {error.message}"[:300]}
    match error.validator:
        case "type" | "maxLength":
            return TypeConstraintViolationError(details=cause)
        case "required":
            return ProtocolError(details=cause)
        case "minItems" | "maxItems":
            return OccurenceConstraintViolationError(details=cause)
        case "enum" | "minimum" | "maximum" | "multipleOf" | "format" | "pattern":
            return PropertyConstraintViolationError(details=cause)
        case _:  # additionalProperties and anything structural
            return FormationViolationError(details=cause)


def charge_box_id(path: str) -> str | None:
    """The charge box id of ``/ocpp/<id>``, if it is a valid Central CP id."""
    match = PATH.fullmatch(path.split("?", 1)[0])
    if match is None or PRINCIPAL_ID.fullmatch(match.group(1)) is None:
        return None
    return match.group(1)


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` of an ``Authorization: Basic`` header, or None."""
    if not header or len(header) > 1024:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        text = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = text.partition(":")
    if not sep:
        return None
    return user, password
