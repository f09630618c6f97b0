"""HTTP entry points of the registry (``/api``): JSON in, JSON out, nothing clever.

Each view parses the request, calls :class:`registry.service.RegistryService`, and
serialises the result. Registry errors become ``{"error", "message"}`` with their status
(plus ``WWW-Authenticate`` on 401 and ``Retry-After`` on 429).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Set as AbstractSet
from decimal import Decimal
from typing import Any, NoReturn

from flask import Blueprint, Response, jsonify, request

from common.http import ApiError, app_extension
from registry.errors import NotFound, RateLimited, RegistryError, Unauthorized
from registry.service import Caller, Issued, RegistryService
from registry.validation import check_cp_id, check_location, check_price

__all__ = ["MAX_BODY", "bp", "database_unavailable", "registry_error"]

MAX_BODY = 16 * 1024  # bytes of JSON a request may carry
_DRAIN_CHUNK = 64 * 1024

bp = Blueprint("registry", __name__, url_prefix="/api")
log = logging.getLogger(__name__)


def _service() -> RegistryService:
    return app_extension("registry", RegistryService)


def _caller() -> Caller:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    bearer = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return Caller(source_ip=request.remote_addr, bearer=bearer)


def _path_id(cp_id: str) -> str:
    """An id from the URL: one that cannot exist is simply not found."""
    try:
        return check_cp_id(cp_id)
    except RegistryError:
        raise NotFound("no such charge point (ids are 1-32 letters, digits, '-', '_')") from None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _drain() -> None:
    """Read and drop the rest of the body, so the client reads our answer, not a reset."""
    try:
        while request.stream.read(_DRAIN_CHUNK):
            pass
    except Exception:  # past the server's own cap, or the client went away: stop here
        return


def _json_body(
    *, required: AbstractSet[str], optional: AbstractSet[str] = frozenset()
) -> dict[str, Any]:
    """The request's JSON object, with exactly the fields allowed.

    Raises ApiError 415 (not JSON), 413 (too big), 400 (malformed, not an object,
    missing or unknown fields).
    """
    if request.mimetype != "application/json":
        raise ApiError(
            415, "unsupported_media_type", "send the body as JSON (Content-Type: application/json)"
        )
    length = request.content_length
    raw = b"" if length is not None and length > MAX_BODY else request.stream.read(MAX_BODY + 1)
    if (length is not None and length > MAX_BODY) or len(raw) > MAX_BODY:
        _drain()
        raise ApiError(413, "payload_too_large", f"the body must be at most {MAX_BODY} bytes")
    try:
        body = json.loads(raw.decode("utf-8"), parse_float=Decimal, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, "malformed_json", "the body is not valid UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the body must be a JSON object")
    missing = sorted(required - body.keys())
    unknown = sorted(body.keys() - required - optional)
    if missing:
        raise ApiError(400, "invalid_body", f"missing field(s): {', '.join(missing)}")
    if unknown:
        raise ApiError(400, "invalid_body", f"unknown field(s): {', '.join(unknown)}")
    return body


def _issued(issued: Issued, status: int) -> Response:
    response = jsonify({**issued.cp.to_json(), "secret": issued.secret})
    response.status_code = status
    return response


@bp.get("/health")
def health() -> Response:
    _service().ping()
    return jsonify(status="ok")


@bp.post("/chargepoints")
def register() -> Response:
    body = _json_body(required={"id", "location"}, optional={"price"})
    cp_id = check_cp_id(body["id"])
    location = check_location(body["location"])
    price = check_price(body["price"]) if body.get("price") is not None else None
    issued = _service().register(_caller(), cp_id, location, price)
    response = _issued(issued, 201)
    response.headers["Location"] = f"/api/chargepoints/{cp_id}"
    return response


@bp.get("/chargepoints")
def list_chargepoints() -> Response:
    cps = _service().list_all(_caller())
    return jsonify(chargepoints=[cp.to_json() for cp in cps])


@bp.get("/chargepoints/<cp_id>")
def get_chargepoint(cp_id: str) -> Response:
    return jsonify(_service().get(_path_id(cp_id)).to_json())


@bp.delete("/chargepoints/<cp_id>")
def deregister(cp_id: str) -> Response:
    _service().deregister(_caller(), _path_id(cp_id))
    return Response(status=204)


@bp.post("/chargepoints/<cp_id>/rotate")
def rotate(cp_id: str) -> Response:
    return _issued(_service().rotate(_caller(), _path_id(cp_id)), 200)


@bp.post("/verify")
def verify() -> Response:
    body = _json_body(required={"id", "secret"})
    cp_id = check_cp_id(body["id"])
    if not isinstance(body["secret"], str):
        raise ApiError(400, "invalid_field", "secret must be a string")
    status = _service().verify(Caller(source_ip=request.remote_addr), cp_id, body["secret"])
    return jsonify(id=status.id, valid=True, status=status.status)


def registry_error(exc: RegistryError) -> Response:
    """Flask error handler: a :class:`RegistryError` as JSON with its status and headers."""
    response = jsonify(error=exc.code, message=exc.message)
    response.status_code = exc.status
    if isinstance(exc, Unauthorized):
        challenge = 'Bearer realm="ev-registry"'
        if exc.code != "missing_token":
            challenge += ', error="invalid_token"'
        response.headers["WWW-Authenticate"] = challenge
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def database_unavailable(exc: Exception) -> Response:
    """Flask error handler: the database cannot be reached (or stays locked) - 503, not 500."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    log.warning("database unavailable", extra={"fields": {"reason": reason}})
    response = jsonify(error="database_unavailable", message="the database is unavailable; retry")
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return response
