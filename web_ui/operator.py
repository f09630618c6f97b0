"""The operator area: log in, stop/resume, revoke a key, set a price, register a CP,
clear a weather alert.

Every command is a POST with the session's CSRF token, answered with a redirect back to
the operator page (post/redirect/get) and a one-line message, except a registration,
whose answer shows the new CP's secret once and is never cached.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response

from common.bearer import token_matches
from web_ui.deps import clients, login_throttle, settings
from web_ui.errors import UpstreamRejected, UpstreamUnavailable
from web_ui.security import (
    is_operator,
    log_in,
    log_out,
    operator_required,
    safe_next,
)
from web_ui.view import Board

__all__ = ["bp", "validate_registration"]

bp = Blueprint("operator", __name__, url_prefix="/operator")

_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def validate_registration(form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The register form's values, cleaned, and an error per bad field (the Registry's rules)."""
    values = {k: (form.get(k) or "").strip() for k in ("id", "location", "price")}
    errors: dict[str, str] = {}
    if not _ID.fullmatch(values["id"]):
        errors["id"] = "Not a valid id: use 1-32 letters, digits, '-' or '_' (no spaces)."
    location = values["location"]
    if not location or len(location) > 64 or not location.isprintable():
        errors["location"] = "Give a location of 1-64 printable characters."
    if values["price"]:
        try:
            price = Decimal(values["price"])
        except InvalidOperation:
            price = Decimal(-1)
        exponent = price.as_tuple().exponent if price.is_finite() else 0
        if (
            not price.is_finite()
            or not Decimal(0) <= price <= Decimal(100)
            or (isinstance(exponent, int) and exponent < -4)
        ):
            errors["price"] = "A price in €/kWh from 0 to 100, at most 4 decimal places."
    return values, errors


def _valid_price(text: str) -> str | None:
    _, errors = validate_registration({"id": "x", "location": "x", "price": text})
    return text if text and "price" not in errors else None


# ----------------------------------------------------------------- login
@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    target = safe_next(request.values.get("next"), url_for("operator.panel"))
    if is_operator():
        return redirect(target)
    token = settings().operator_token
    error = None
    status = 200
    if request.method == "POST":
        who = request.remote_addr or "?"
        throttle = login_throttle()
        wait = throttle.retry_after(who)
        submitted = request.form.get("token", "")
        if token is None:
            error, status = "The operator area is off: no operator token is configured.", 403
        elif wait:
            error, status = f"Too many failed attempts; try again in {int(wait) + 1} s.", 429
        elif token_matches(submitted, token):
            throttle.succeeded(who)
            log_in()
            return redirect(target, code=303)
        else:
            throttle.failed(who)
            error, status = "That is not the operator token.", 401
    return render_template("login.html", error=error, next=target), status


@bp.post("/logout")
def logout() -> Response:
    log_out()
    return redirect(url_for("board.index"), code=303)


# ----------------------------------------------------------------- the panel
@bp.get("")
@operator_required
def panel() -> str:
    clients().live.wait_ready(3.0)
    return _panel(registry=clients().registry is not None)


def _panel(
    registry: bool, values: Mapping[str, str] | None = None, errors: Mapping[str, str] | None = None
) -> str:
    """The operator panel, rendered while no event changes the board (no copy of it)."""

    def render(board: Board) -> str:
        return render_template(
            "operator.html",
            board=board,
            tiles=sorted(board.tiles.values(), key=lambda t: t.id),
            alerts=sorted(w.location for w in board.weather.values() if w.alert),
            registry=registry,
            values=values or {},
            errors=errors or {},
            live="operator",
        )

    page: str = clients().live.read(render)
    return page


def _run(action: str, call: Any) -> Response:
    try:
        call()
    except UpstreamRejected as exc:
        flash(f"{action}: refused — {exc.message}", "error")
    except UpstreamUnavailable as exc:
        flash(f"{action}: {exc.service} is unreachable; nothing was changed.", "error")
    else:
        flash(f"{action}: done.", "ok")
    return redirect(url_for("operator.panel"), code=303)


@bp.post("/cp/<cp_id>/<command>")
@operator_required
def cp_command(cp_id: str, command: str) -> Response:
    central = clients().central
    if not _ID.fullmatch(cp_id):
        abort(404)
    if command == "stop":
        return _run(f"Stop {cp_id}", lambda: central.stop(cp_id))
    if command == "resume":
        return _run(f"Resume {cp_id}", lambda: central.resume(cp_id))
    if command == "revoke-key":
        return _run(f"Revoke the key of {cp_id}", lambda: central.revoke_key(cp_id))
    if command == "price":
        price = _valid_price((request.form.get("price") or "").strip())
        if price is None:
            flash(f"Price of {cp_id}: a number of €/kWh from 0 to 100 (4 places).", "error")
            return redirect(url_for("operator.panel"), code=303)
        action = f"Price of {cp_id} set to {price} €/kWh"
        return _run(action, lambda: central.set_price(cp_id, price))
    abort(404)


@bp.post("/stop-all")
@operator_required
def stop_all() -> Response:
    return _run("Stop every charge point", lambda: clients().central.stop(None))


@bp.post("/resume-all")
@operator_required
def resume_all() -> Response:
    return _run("Resume every charge point", lambda: clients().central.resume(None))


@bp.post("/weather/clear")
@operator_required
def clear_alert() -> Response:
    location = (request.form.get("location") or "").strip()
    if not location or len(location) > 64:
        abort(400, "Which location?")
    return _run(
        f"Clear the weather alert in {location}", lambda: clients().central.clear_alert(location)
    )


@bp.post("/register")
@operator_required
def register() -> Any:
    registry = clients().registry
    if registry is None:
        abort(404, "No Registry is configured (--registry-url).")
    values, errors = validate_registration(request.form.to_dict())
    if not errors:
        try:
            issued = registry.register(values["id"], values["location"], values["price"] or None)
        except UpstreamRejected as exc:
            field = "id" if exc.status == 409 else "form"
            errors[field] = exc.message
        except UpstreamUnavailable as exc:
            errors["form"] = f"{exc.service} is unreachable ({exc.message})."
        else:
            response = make_response(render_template("registered.html", issued=issued))
            response.headers["Cache-Control"] = "no-store"
            return response
    return _panel(registry=True, values=values, errors=errors), 400
