"""The dashboard's Flask app: ``create_app(settings, clients)`` and nothing that connects."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from web_ui import audit, board, operator, revenue, stream
from web_ui.deps import Clients
from web_ui.errors import UpstreamRejected, UpstreamUnavailable
from web_ui.render import JinjaRenderer, install_filters
from web_ui.security import (
    LoginThrottle,
    OperatorSessions,
    check_csrf,
    csrf_token,
    is_operator,
)
from web_ui.settings import WebSettings

__all__ = ["create_app"]

# Everything comes from this server: no CDN, no inline script or style.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def create_app(settings: WebSettings, clients: Clients) -> Flask:
    """Build the app; the caller starts ``clients.live`` and serves the app."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="ev_web_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),
        MAX_CONTENT_LENGTH=64 * 1024,
        TEMPLATES_AUTO_RELOAD=False,
    )
    app.extensions["ev_web.clients"] = clients
    app.extensions["ev_web.settings"] = settings
    app.extensions["ev_web.throttle"] = LoginThrottle()
    app.extensions["ev_web.sessions"] = OperatorSessions(
        app.permanent_session_lifetime.total_seconds()
    )
    install_filters(app)
    clients.live.set_renderer(JinjaRenderer(app))
    app.before_request(check_csrf)
    for blueprint in (board.bp, stream.bp, revenue.bp, audit.bp, operator.bp):
        app.register_blueprint(blueprint)

    @app.context_processor
    def _globals() -> dict[str, Any]:
        return {
            "csrf_token": csrf_token,
            "is_operator": is_operator(),
            "status": clients.live.status,
            "operator_enabled": settings.operator_token is not None,
        }

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        if request.endpoint != "static":
            # Pages show live and operator data: never from a cache.
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[str, int]:
        code = exc.code or 500
        return render_template("error.html", code=code, title=exc.name, text=exc.description), code

    @app.errorhandler(UpstreamUnavailable)
    def _unavailable(exc: UpstreamUnavailable) -> tuple[str, int]:
        text = f"{exc.service} is unreachable right now ({exc.message}). Try again shortly."
        return render_template("error.html", code=503, title="Unavailable", text=text), 503

    @app.errorhandler(UpstreamRejected)
    def _rejected(exc: UpstreamRejected) -> tuple[str, int]:
        text = f"{exc.service} refused the request: {exc.message}"
        return render_template("error.html", code=502, title="Refused", text=text), 502

    return app
