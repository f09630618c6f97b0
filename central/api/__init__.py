"""API_Central: Flask app over the live network and the shared database."""

from __future__ import annotations

from flask import Flask, Response, jsonify

from central.api.bridge import Bridge
from central.api.openapi import openapi
from central.api.routes import api
from common.db import Database
from common.db.chain import ChainVerifier
from common.http import install_json_errors

__all__ = ["Bridge", "create_app"]


def create_app(
    bridge: Bridge,
    db: Database,
    operator_token: str,
    verifier: ChainVerifier | None = None,
    weather_token: str | None = None,
) -> Flask:
    """Build API_Central: public reads for anyone, the rest behind ``operator_token``.

    ``verifier`` checks the audit chain (Central shares it with its checkpoints); one
    over ``db``'s audit keys is made if omitted. ``weather_token`` (the weather
    office's) is accepted on the weather writes only: raising and clearing alerts,
    posting readings.
    """
    if verifier is None:
        if db.audit_keys is None:
            raise ValueError("API_Central needs the audit keys (open_database(audit_keys=...))")
        verifier = ChainVerifier(db.audit_keys)
    app = Flask("central.api")
    app.config.update(
        OPERATOR_TOKEN=operator_token, WEATHER_TOKEN=weather_token, MAX_CONTENT_LENGTH=64 * 1024
    )
    app.extensions["bridge"] = bridge
    app.extensions["db"] = db
    app.extensions["audit_verifier"] = verifier
    app.register_blueprint(api)
    install_json_errors(app)

    @app.get("/api/openapi.json")
    def spec() -> Response:
        return jsonify(openapi())

    return app
