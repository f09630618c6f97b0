"""API_Central endpoints (DESIGN.md).

Two read models (docs/security.md, "API_Central"): anyone may read the public one,
charge points' id, location, state, price and live power, and the weather; the
operator token unlocks the rest, driver ids, sessions, drivers, stats, the audit log,
and every write. A wrong token is refused (401), never read as "anonymous".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from central.api import queries
from central.api.bridge import Bridge
from central.errors import CentralError
from central.network import Network
from common.bearer import sent_token, token_matches, unauthorized
from common.db import Database
from common.db.chain import ChainVerifier
from common.http import ApiError, app_extension
from common.protocol.errors import MessageError
from common.protocol.messages import ChargeRequest

__all__ = ["api"]

api = Blueprint("api", __name__, url_prefix="/api")


def _bridge() -> Bridge:
    return app_extension("bridge", Bridge)


def _db() -> Database:
    return app_extension("db", Database)


def _read(fn: Callable[..., Any], **kwargs: Any) -> Any:
    with _db().read() as session:
        return fn(session, **kwargs)


def _operator(*, weather: bool = False) -> str:
    """Check the bearer token; returns the actor name for the audit log.

    With ``weather``, the weather office's own token (``EV_WEATHER_TOKEN``) is accepted
    too, as actor ``weather``: only the weather routes pass it.
    """
    if weather and token_matches(sent_token(), current_app.config.get("WEATHER_TOKEN")):
        return "weather"
    if not _is_operator():
        raise unauthorized("operator token required (Authorization: Bearer ...)")
    return "operator"


def _is_operator() -> bool:
    """True with the right token, False with none; a wrong token is a 401."""
    token = sent_token()
    if token is None:
        return False
    if not token_matches(token, current_app.config["OPERATOR_TOKEN"]):
        raise unauthorized("wrong operator token")
    return True


def _public_cp(cp: dict[str, Any]) -> dict[str, Any]:
    """A charge point as anyone may see it: no driver, no session id, no internals."""
    session = cp.get("session")
    return {
        "id": cp["id"],
        "location": cp["location"],
        "price_eur_kwh": cp["price_eur_kwh"],
        "state": cp["state"],
        "registered": cp["registered"],
        "stopped_by": cp["stopped_by"],
        "session": {"kw": session["kw"], "kwh": session["kwh"]} if session else None,
    }


def _json_body() -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(
            415, "unsupported_media_type", "send a JSON body (Content-Type: application/json)"
        )
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return body


def _net(make: Callable[[Network], Any]) -> Any:
    """Await a network operation; its refusal becomes the matching HTTP error."""
    try:
        return _bridge().call(make)
    except CentralError as exc:
        raise _api_error(exc) from None


def _net_sync(fn: Callable[[Network], Any]) -> Any:
    """Run a plain network function; its refusal becomes the matching HTTP error."""
    try:
        return _bridge().run(fn)
    except CentralError as exc:
        raise _api_error(exc) from None


def _api_error(exc: CentralError) -> ApiError:
    return ApiError(exc.status, str(exc.code), exc.message)


def _location(body: dict[str, Any]) -> str:
    location = body.get("location")
    if not isinstance(location, str) or not 1 <= len(location) <= 64:
        raise ApiError(400, "bad_request", "location (1-64 characters) is required")
    return location


def _ip() -> str | None:
    return request.remote_addr


@api.get("/health")
def health() -> Response:
    counts = _bridge().run(lambda n: n.fleet.counts())
    return jsonify(status="ok", chargepoints=counts)


@api.get("/chargepoints")
def chargepoints() -> Response:
    operator = _is_operator()
    cps = _bridge().run(lambda n: n.fleet.snapshot())
    return jsonify(chargepoints=cps if operator else [_public_cp(cp) for cp in cps])


@api.get("/chargepoints/<cp_id>")
def chargepoint(cp_id: str) -> Response:
    operator = _is_operator()
    cp = _net_sync(lambda n: n.fleet.get(cp_id).to_dict())
    return jsonify(cp if operator else _public_cp(cp))


@api.put("/chargepoints/<cp_id>/price")
def set_price(cp_id: str) -> Response:
    actor = _operator()
    body = _json_body()
    if "price_eur_kwh" not in body:
        raise ApiError(400, "bad_request", "missing price_eur_kwh")
    price = _net(lambda n: n.operator.set_price(cp_id, body["price_eur_kwh"], actor, _ip()))
    return jsonify(id=cp_id, price_eur_kwh=float(price))


@api.post("/chargepoints/<cp_id>/<command>")
def cp_command(cp_id: str, command: str) -> Response:
    actor = _operator()
    ip = _ip()
    if command == "stop":
        _net(lambda n: n.operator.stop(cp_id, actor, ip))
    elif command == "resume":
        _net(lambda n: n.operator.resume(cp_id, actor, ip))
    elif command == "revoke-key":
        _net(lambda n: n.operator.revoke_key(cp_id, actor, ip))
    else:
        raise ApiError(404, "not_found", f"unknown command {command!r}")
    return jsonify(_net_sync(lambda n: n.fleet.get(cp_id).to_dict()))


@api.post("/chargepoints/stop-all")
def stop_all() -> Response:
    actor = _operator()
    ip = _ip()
    return jsonify(stopped=_net(lambda n: n.operator.stop(None, actor, ip)))


@api.post("/chargepoints/resume-all")
def resume_all() -> Response:
    actor = _operator()
    ip = _ip()
    return jsonify(resumed=_net(lambda n: n.operator.resume(None, actor, ip)))


@api.get("/drivers")
def drivers() -> Response:
    _operator()
    rows = _read(queries.drivers)
    connected = set(_bridge().run(lambda n: list(n.fleet.drivers)))
    for row in rows:
        row["connected"] = row["id"] in connected
    return jsonify(drivers=rows)


@api.get("/sessions")
def sessions() -> Response:
    _operator()
    args = request.args
    rows = _read(
        queries.sessions,
        status=args.get("status") or None,
        cp_id=args.get("cp_id") or None,
        driver_id=args.get("driver_id") or None,
        limit=_int_arg("limit", 200, 1, 5000),
    )
    live = {s["session_id"]: s for s in _bridge().run(lambda n: n.fleet.live_sessions())}
    for row in rows:
        if row["session_id"] in live:
            row["kwh"] = live[row["session_id"]]["kwh"]
            row["total_eur"] = live[row["session_id"]]["eur"]
    return jsonify(sessions=rows)


@api.post("/sessions")
def create_session() -> tuple[Response, int]:
    _operator()
    try:
        request_ = ChargeRequest.parse(_json_body())
    except MessageError as exc:
        raise ApiError(400, "bad_request", exc.message) from None
    cp_id = request_.cp_id
    if cp_id is None:
        raise ApiError(400, "bad_request", "cp_id (string) is required")
    ip = _ip()
    session = _net(lambda n: n.sessions.request(cp_id, request_.driver_id, request_.target_kwh, ip))
    return jsonify(session.to_dict()), 201


@api.post("/sessions/<session_id>/stop")
def stop_session(session_id: str) -> Response:
    actor = _operator()
    ticket = _net(lambda n: n.operator.stop_session(session_id, actor))
    return jsonify(ticket.to_body())


@api.get("/stats")
def stats() -> Response:
    _operator()
    finished = _read(queries.stats)

    def live(n: Network) -> dict[str, Any]:
        return {"by_state": n.fleet.counts(), "active_sessions": len(n.fleet.live_sessions())}

    return jsonify({**_bridge().run(live), **finished})


def _audit_filter() -> queries.AuditFilter:
    args = request.args
    return queries.AuditFilter(
        actor=args.get("actor") or None,
        action=args.get("action") or None,
        cp_id=args.get("cp_id") or None,
        since=_time_arg("since"),
        until=_time_arg("until"),
        limit=_int_arg("limit", 500, 1, 100_000),
    )


@api.get("/audit")
def audit() -> Response:
    """The entries, and the chain checked since the last look (``?verify=full``: all of it).

    Both from one read snapshot, never in the writer's turn; checks run one at a time.
    """
    _operator()
    f = _audit_filter()
    full = request.args.get("verify") == "full"
    verifier = app_extension("audit_verifier", ChainVerifier)
    with _db().read() as session:
        body = queries.audit_entries(session, f)
        body["chain"] = verifier.check(session, full=full).to_dict()
    return jsonify(body)


@api.get("/audit.csv")
def audit_csv() -> Response:
    _operator()
    text = _read(queries.audit_csv, f=_audit_filter())
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit.csv"},
    )


@api.get("/weather")
def weather() -> Response:
    def view(n: Network) -> dict[str, Any]:
        return {"alerts": sorted(n.fleet.alerts), "readings": dict(n.fleet.readings)}

    return jsonify(_bridge().run(view))


@api.post("/weather/alerts")
def raise_alert() -> tuple[Response, int]:
    actor = _operator(weather=True)
    body = _json_body()
    location = _location(body)
    temperature = body.get("temperature_c")
    if temperature is not None and not isinstance(temperature, int | float):
        raise ApiError(400, "bad_request", "temperature_c must be a number")
    ip = _ip()
    affected = _net(lambda n: n.weather.alert(location, temperature, actor, ip))
    return jsonify(location=location, affected=affected), 201


@api.delete("/weather/alerts/<location>")
def clear_alert(location: str) -> Response:
    actor = _operator(weather=True)
    ip = _ip()
    affected = _net(lambda n: n.weather.clear(location, actor, ip))
    return jsonify(location=location, affected=affected)


@api.post("/weather/readings")
def weather_reading() -> tuple[Response, int]:
    actor = _operator(weather=True)
    body = _json_body()
    location = _location(body)
    temperature = body.get("temperature_c")
    status = body.get("status", "ok")
    if status == "ok" and not isinstance(temperature, int | float):
        raise ApiError(400, "bad_request", "temperature_c must be a number")
    reason = body.get("reason")
    reason = str(reason)[:200] if reason is not None else None
    _bridge().run(lambda n: n.weather.reading(location, temperature, str(status), actor, reason))
    return jsonify(location=location), 202


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_request", f"{name} must be between {low} and {high}")
    return value


def _time_arg(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "bad_request", f"{name} must be an ISO 8601 time") from None
    if value.tzinfo is None:
        raise ApiError(400, "bad_request", f"{name} needs a time zone, e.g. 2026-01-01T00:00Z")
    return value
