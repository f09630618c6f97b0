"""The office's small HTTP endpoint: see and change the watched locations while it runs.

``GET /locations`` → ``{"locations": [{location, status, temperature_c, reason, alert,
delivered}]}``; ``POST /locations {"location": NAME}`` → 201 (200 if already watched);
``DELETE /locations/<name>`` → 200 (404 if not watched); ``GET /health``. Writes need
the office's own bearer token (``EV_WEATHER_TOKEN``): changing what is watched is no
more than what that token already allows at Central.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request

from common.bearer import sent_token, token_matches, unauthorized
from common.http import ApiError, install_json_errors
from weather.app import WeatherOffice
from weather.errors import InvalidLocation, LocationsFileError

__all__ = ["create_app"]


def create_app(office: WeatherOffice, token: str) -> Flask:
    """The Flask app over a running office."""
    app = Flask("weather")
    install_json_errors(app)

    def require_token() -> None:
        if not token_matches(sent_token(), token):
            raise unauthorized("the weather office's token required (Authorization: Bearer ...)")

    def body_location() -> Any:
        body = request.get_json(silent=True) if request.is_json else None
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", 'send a JSON body {"location": NAME}')
        return body.get("location")

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok", provider=office.provider.name)

    @app.get("/locations")
    def list_locations() -> Response:
        return jsonify(locations=office.snapshot())

    @app.post("/locations")
    def add_location() -> tuple[Response, int]:
        require_token()
        name = body_location()
        if not isinstance(name, str):
            raise ApiError(400, "bad_request", "location must be a string")
        try:
            added = office.book.add(name)
        except InvalidLocation as exc:
            raise ApiError(400, "bad_request", str(exc)) from None
        except LocationsFileError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        return jsonify(location=name.strip(), added=added), 201 if added else 200

    @app.delete("/locations/<path:name>")
    def remove_location(name: str) -> Response:
        require_token()
        try:
            removed = office.book.remove(name)
        except LocationsFileError as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        if not removed:
            raise ApiError(404, "not_found", f"{name!r} is not watched")
        return jsonify(location=name, removed=True)

    return app
