"""API_Central: Flask app over the live network and the shared database."""

from __future__ import annotations

from flask import Flask, Response, jsonify

from central.api.bridge import Bridge
from central.api.openapi import openapi
from central.api.routes import api
from common.db import Database
from common.http import install_json_errors

__all__ = ["Bridge", "create_app"]


def create_app(
    bridge: Bridge, db: Database, operator_token: str, weather_token: str | None = None
) -> Flask:
    """Build API_Central. Reads are open; writes check ``operator_token``.

    ``weather_token`` (the weather office's) is accepted on the weather writes only:
    raising and clearing alerts, posting readings.
    """
    app = Flask("central.api")
    app.config.update(
        OPERATOR_TOKEN=operator_token, WEATHER_TOKEN=weather_token, MAX_CONTENT_LENGTH=64 * 1024
    )
    app.extensions["bridge"] = bridge
    app.extensions["db"] = db
    app.register_blueprint(api)
    install_json_errors(app)

    @app.get("/api/openapi.json")
    def spec() -> Response:
        return jsonify(openapi())

    return app
