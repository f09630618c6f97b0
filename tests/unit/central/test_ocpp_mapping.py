"""The pure OCPP 1.6J mapping: statuses, meter values, stop reasons, CallError codes, auth."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from jsonschema.exceptions import ValidationError
from ocpp.messages import MessageType, get_validator

from central.ocpp.mapping import (
    Effect,
    Meter,
    call_error,
    charge_box_id,
    id_tag,
    parse_basic,
    read_meter,
    status_effect,
    stop_reason,
    transaction_id,
)


@pytest.mark.parametrize(
    ("connector", "status", "effect"),
    [
        (1, "Available", Effect.OPERATIVE),
        (0, "Available", Effect.OPERATIVE),
        (1, "Preparing", Effect.OPERATIVE),
        (1, "Charging", Effect.OPERATIVE),
        (1, "SuspendedEV", Effect.OPERATIVE),
        (1, "Finishing", Effect.OPERATIVE),
        (1, "Faulted", Effect.FAULTED),
        (0, "Faulted", Effect.FAULTED),
        (1, "Unavailable", Effect.UNAVAILABLE),
        (2, "Faulted", Effect.IGNORED),  # a second connector is not modelled
        (1, "Exploded", Effect.IGNORED),
    ],
)
def test_status_effects(connector: int, status: str, effect: Effect) -> None:
    assert status_effect(connector, status) is effect


def _sample(value: str, **kw: str) -> dict[str, Any]:
    return {"value": value, **kw}


def test_meter_reads_the_register_and_the_power_in_any_allowed_unit() -> None:
    readings = [
        {"timestamp": "t1", "sampled_value": [_sample("1000")]},  # default measurand, Wh
        {
            "timestamp": "t2",
            "sampled_value": [
                _sample("1.5", measurand="Energy.Active.Import.Register", unit="kWh"),
                _sample("7.4", measurand="Power.Active.Import", unit="kW"),
                _sample("230", measurand="Voltage", unit="V"),
                _sample("400", measurand="Energy.Active.Import.Register", phase="L1"),
                _sample("beef", format="SignedData"),
            ],
        },
    ]
    assert read_meter(readings) == Meter(Decimal("1500.0"), Decimal("7400.0"))
    assert read_meter([]) == Meter(None, None)
    assert read_meter([{"sampled_value": [_sample("9", measurand="SoC")]}]) == Meter(None, None)


@pytest.mark.parametrize(
    "sample",
    [
        _sample("lots"),
        _sample("-5"),
        _sample("NaN"),
        _sample("Infinity"),
        _sample("5", unit="W"),  # energy in watts
        _sample("5", measurand="Power.Active.Import", unit="Wh"),
    ],
)
def test_meter_refuses_values_that_are_not_energy(sample: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        read_meter([{"sampled_value": [sample]}])


def test_transaction_ids_are_stable_positive_int32() -> None:
    ids = {transaction_id(f"session-{i}") for i in range(2000)}
    assert len(ids) == 2000
    assert all(1 <= i <= 2**31 - 1 for i in ids)
    assert transaction_id("abc") == transaction_id("abc")


def test_id_tags_fit_ocpp() -> None:
    assert id_tag("D1") == "D1"
    assert id_tag("x" * 32) == "x" * 20


@pytest.mark.parametrize(
    ("reason", "asked", "ticket"),
    [
        ("EVDisconnected", None, "unplugged"),
        (None, None, "stopped_at_charger"),  # absent means Local
        ("Remote", None, "stopped"),
        ("Remote", "target_reached", "target_reached"),
        (None, "stopped_by_operator", "stopped_by_operator"),
        ("EmergencyStop", "target_reached", "emergency_stop"),  # the charger's own reason wins
        ("Weird", None, "other"),
    ],
)
def test_stop_reasons(reason: str | None, asked: str | None, ticket: str) -> None:
    assert stop_reason(reason, asked) == ticket


def _schema_error(action: str, payload: dict[str, Any]) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        get_validator(MessageType.Call, action, "1.6").validate(payload)
    return caught.value


STATUS = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}


@pytest.mark.parametrize(
    ("action", "payload", "code"),
    [
        ("StatusNotification", {**STATUS, "status": "Exploded"}, "PropertyConstraintViolation"),
        ("StatusNotification", {**STATUS, "extra": 1}, "FormationViolation"),
        ("StatusNotification", {"connectorId": 1, "status": "Available"}, "ProtocolError"),
        ("StatusNotification", {**STATUS, "connectorId": "1"}, "TypeConstraintViolation"),
        ("StatusNotification", {**STATUS, "info": "x" * 51}, "TypeConstraintViolation"),
        ("Authorize", {"idTag": 42}, "TypeConstraintViolation"),
    ],
)
def test_schema_failures_get_the_1_6_call_error(
    action: str, payload: dict[str, Any], code: str
) -> None:
    error = call_error(_schema_error(action, payload))
    assert error.code == code
    assert error.details["cause"]


@pytest.mark.parametrize(
    ("path", "cp_id"),
    [
        ("/ocpp/CP1", "CP1"),
        ("/ocpp/CP-1_a/", "CP-1_a"),
        ("/ocpp/CP1?x=1", "CP1"),
        ("/ocpp/", None),
        ("/ocpp/CP%201", None),
        ("/ocpp/" + "x" * 33, None),
        ("/other/CP1", None),
        ("/ocpp/CP1/more", None),
    ],
)
def test_charge_box_id_from_the_path(path: str, cp_id: str | None) -> None:
    assert charge_box_id(path) == cp_id


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


def test_basic_credentials() -> None:
    assert parse_basic(_basic("CP1:s3cr:et")) == ("CP1", "s3cr:et")
    assert parse_basic(_basic("CP1:")) == ("CP1", "")
    assert parse_basic("basic " + base64.b64encode(b"A:b").decode()) == ("A", "b")
    for bad in (
        None,
        "",
        "Bearer abc",
        "Basic",
        "Basic !!!",
        _basic("no colon"),
        "Basic " + "A" * 2000,
    ):
        assert parse_basic(bad) is None
