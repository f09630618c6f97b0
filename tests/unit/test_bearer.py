"""common.bearer and common.http.app_extension, through a small Flask app."""

from __future__ import annotations

import pytest
from flask import Flask, Response, jsonify

from common.bearer import sent_token, token_matches, unauthorized
from common.http import app_extension, install_json_errors

TOKEN = "s3cret-token"


class Thing:
    """Something a composition root hands to its views."""


def make_app() -> Flask:
    app = Flask("bearer_test")
    install_json_errors(app)
    app.extensions["thing"] = Thing()
    app.extensions["not_a_thing"] = "a string"

    @app.get("/token")
    def token() -> Response:
        return jsonify(sent=sent_token())

    @app.get("/guarded")
    def guarded() -> Response:
        if not token_matches(sent_token(), TOKEN):
            raise unauthorized("token required (Authorization: Bearer ...)")
        return jsonify(ok=True)

    @app.get("/thing/<name>")
    def thing(name: str) -> Response:
        return jsonify(kind=type(app_extension(name, Thing)).__name__)

    return app


@pytest.mark.parametrize(
    ("headers", "sent"),
    [
        ({}, None),
        ({"Authorization": f"Bearer {TOKEN}"}, TOKEN),
        ({"Authorization": "Bearer "}, ""),
        ({"Authorization": f"Basic {TOKEN}"}, ""),  # not a bearer: never "no header"
        ({"Authorization": f"bearer {TOKEN}"}, ""),
    ],
)
def test_sent_token_reads_only_a_bearer_header(headers: dict[str, str], sent: str | None) -> None:
    answer = make_app().test_client().get("/token", headers=headers)
    assert answer.get_json() == {"sent": sent}


@pytest.mark.parametrize(
    ("sent", "expected", "matches"),
    [
        (TOKEN, TOKEN, True),
        (TOKEN + "x", TOKEN, False),
        (TOKEN[:-1], TOKEN, False),
        ("", "", False),  # an empty token never matches, not even an empty setting
        (None, TOKEN, False),
        (TOKEN, None, False),
        ("é", "é", True),  # compared as UTF-8 bytes (compare_digest refuses non-ASCII str)
    ],
)
def test_token_matches(sent: str | None, expected: str | None, matches: bool) -> None:
    assert token_matches(sent, expected) is matches


def test_a_wrong_or_missing_token_is_a_401_asking_for_a_bearer() -> None:
    client = make_app().test_client()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": TOKEN}):
        answer = client.get("/guarded", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert answer.get_json() == {
            "error": "unauthorized",
            "message": "token required (Authorization: Bearer ...)",
        }
    answer = client.get("/guarded", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200


def test_app_extension_returns_what_the_root_put_there() -> None:
    client = make_app().test_client()
    assert client.get("/thing/thing").get_json() == {"kind": "Thing"}


def test_app_extension_of_the_wrong_kind_is_a_type_error() -> None:
    app = make_app()
    with app.app_context(), pytest.raises(TypeError, match="'not_a_thing' is a str, not a Thing"):
        app_extension("not_a_thing", Thing)
