"""The OpenAPI 3.1 description of API_Central, served at ``/api/openapi.json``."""

from __future__ import annotations

from typing import Any

__all__ = ["ENDPOINTS", "openapi"]

# Whose bearer token a route takes (central/api/routes.py decides; this describes it).
PUBLIC: tuple[str, ...] = ()
OPERATOR = ("operator",)
WEATHER_OFFICE = ("operator", "weather")  # routes.py: _operator(weather=True)

# (method, path, summary, tokens accepted, request body fields, success status)
ENDPOINTS: list[tuple[str, str, str, tuple[str, ...], dict[str, str], int]] = [
    ("get", "/api/health", "Liveness and CP counts by state", PUBLIC, {}, 200),
    (
        "get",
        "/api/chargepoints",
        "Every charge point (public view; all of it with the token)",
        PUBLIC,
        {},
        200,
    ),
    ("get", "/api/chargepoints/{cp_id}", "One charge point", PUBLIC, {}, 200),
    (
        "put",
        "/api/chargepoints/{cp_id}/price",
        "Set the price in EUR/kWh",
        OPERATOR,
        {"price_eur_kwh": "number"},
        200,
    ),
    ("post", "/api/chargepoints/{cp_id}/stop", "Stop a CP (Out of Order)", OPERATOR, {}, 200),
    ("post", "/api/chargepoints/{cp_id}/resume", "Resume a stopped CP", OPERATOR, {}, 200),
    (
        "post",
        "/api/chargepoints/{cp_id}/revoke-key",
        "Revoke the CP's session key",
        OPERATOR,
        {},
        200,
    ),
    ("post", "/api/chargepoints/stop-all", "Stop every CP", OPERATOR, {}, 200),
    ("post", "/api/chargepoints/resume-all", "Resume every CP", OPERATOR, {}, 200),
    ("get", "/api/drivers", "Driver accounts and who is connected", OPERATOR, {}, 200),
    (
        "get",
        "/api/sessions",
        "Charging sessions (filters: status, cp_id, driver_id, limit)",
        OPERATOR,
        {},
        200,
    ),
    (
        "post",
        "/api/sessions",
        "Start a charge for a driver at a CP",
        OPERATOR,
        {"driver_id": "string", "cp_id": "string", "target_kwh": "number"},
        201,
    ),
    (
        "post",
        "/api/sessions/{session_id}/stop",
        "End a session; returns the ticket",
        OPERATOR,
        {},
        200,
    ),
    (
        "get",
        "/api/stats",
        "Counts by state, active sessions, energy and revenue",
        OPERATOR,
        {},
        200,
    ),
    (
        "get",
        "/api/audit",
        "Audit log and chain check (filters: actor, action, cp_id, since, until, limit; "
        "verify=full)",
        OPERATOR,
        {},
        200,
    ),
    ("get", "/api/audit.csv", "Audit log as CSV (same filters)", OPERATOR, {}, 200),
    ("get", "/api/weather", "Weather alerts and latest readings", PUBLIC, {}, 200),
    (
        "post",
        "/api/weather/alerts",
        "Raise a cold alert for a location",
        WEATHER_OFFICE,
        {"location": "string", "temperature_c": "number"},
        201,
    ),
    (
        "delete",
        "/api/weather/alerts/{location}",
        "Clear a location's alert",
        WEATHER_OFFICE,
        {},
        200,
    ),
    (
        "post",
        "/api/weather/readings",
        "Report a temperature (or UNKNOWN) for a location",
        WEATHER_OFFICE,
        {"location": "string", "temperature_c": "number", "status": "string"},
        202,
    ),
    ("get", "/api/openapi.json", "This description", PUBLIC, {}, 200),
]

_ERROR = {
    "description": "error",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            }
        }
    },
}


def openapi() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, tokens, body, status in ENDPOINTS:
        op: dict[str, Any] = {
            "summary": summary,
            "responses": {str(status): {"description": "success"}, "default": _ERROR},
        }
        params = [
            {"name": part[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for part in path.split("/")
            if part.startswith("{")
        ]
        if params:
            op["parameters"] = params
        if tokens:
            op["security"] = [{token: []} for token in tokens]
            op["responses"]["401"] = _ERROR
        if body:
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {k: {"type": v} for k, v in body.items()},
                        }
                    }
                },
            }
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "API_Central", "version": "1"},
        "components": {
            "securitySchemes": {
                "operator": {"type": "http", "scheme": "bearer"},
                "weather": {"type": "http", "scheme": "bearer", "description": "EV_WEATHER_TOKEN"},
            }
        },
        "paths": paths,
    }
