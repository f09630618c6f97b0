"""The registry's Flask application factory (the composition root of the web side)."""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask, Response
from sqlalchemy.exc import OperationalError

from common.db import Database
from common.http import install_json_errors
from common.ratelimit import FailureLimiter
from registry import api
from registry.errors import RegistryError
from registry.service import RegistryService
from registry.settings import Settings

__all__ = ["create_app"]


def create_app(
    settings: Settings, db: Database, *, clock: Callable[[], float] = time.monotonic
) -> Flask:
    """Build the registry app on ``db``.

    Args:
        settings: tokens, default price, scrypt cost, failure limits.
        db: the database shared with Central (migrated).
        clock: monotonic seconds for the failure limiter (tests pass a fake one).
    """
    app = Flask("registry")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    install_json_errors(app)
    limiter = FailureLimiter(
        {"id": settings.max_failures_per_id, "ip": settings.max_failures_per_ip},
        settings.failure_window,
        clock,
    )
    app.extensions["registry"] = RegistryService(
        db,
        provisioning_token=settings.provisioning_token,
        operator_token=settings.operator_token,
        default_price=settings.default_price,
        scrypt=settings.scrypt,
        limiter=limiter,
        window=settings.failure_window,
    )
    app.register_blueprint(api.bp)
    app.register_error_handler(RegistryError, api.registry_error)
    app.register_error_handler(OperationalError, api.database_unavailable)

    @app.after_request
    def _no_store(response: Response) -> Response:
        # Some answers carry a secret; none of them should sit in a cache.
        response.headers["Cache-Control"] = "no-store"
        return response

    return app
