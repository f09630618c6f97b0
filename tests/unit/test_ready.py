"""The ready line (common.ready): its exact format, its parser, and finding it in a log."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.config import HostPort
from common.ready import announce, find_ready, parse_ready, ready_line


def test_the_line_is_the_mark_the_service_and_its_fields_in_order() -> None:
    line = ready_line("registry", url="https://127.0.0.1:8443", ca=Path("/data/tls/ca.pem"))
    assert line == "EV-READY registry url=https://127.0.0.1:8443 ca=/data/tls/ca.pem"


def test_values_are_shown_with_str_and_none_is_left_out() -> None:
    line = ready_line("central", listen=HostPort("::1", 7000), ocpp=None)
    assert line == "EV-READY central listen='[::1]:7000'"


def test_a_value_with_a_space_or_a_quote_is_quoted_and_read_back() -> None:
    line = ready_line("registry", ca="/my data/it's ca.pem", url="")
    assert line == "EV-READY registry ca='/my data/it'\"'\"'s ca.pem' url=''"
    assert parse_ready(line) == ("registry", {"ca": "/my data/it's ca.pem", "url": ""})


def test_announce_prints_the_line_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    announce("web", url="http://127.0.0.1:8000/")
    assert capsys.readouterr().out == "EV-READY web url=http://127.0.0.1:8000/\n"


@pytest.mark.parametrize("value", ["a\nb", "a\r", "a\u2028b", "a\x85"])
def test_a_value_with_a_line_break_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="one line"):
        ready_line("weather", url=value)


@pytest.mark.parametrize("service", ["", "two words", "-x", "a=b"])
def test_a_service_name_must_be_one_word(service: str) -> None:
    with pytest.raises(ValueError, match="one word"):
        ready_line(service)


@pytest.mark.parametrize(
    "line",
    [
        "Registry listening on https://127.0.0.1:8443",
        "EV-READY",
        "EV-READY ",
        "EV-READYregistry url=x",
        " EV-READY registry url=x",  # the mark starts the line
        "[web] EV-READY web url=x",
        "EV-READY registry url='cut short",
        "EV-READY registry url",  # a field without '='
        "EV-READY registry =x",
        "EV-READY registry 1x=y",
    ],
)
def test_other_lines_and_garbled_ones_are_not_ready_lines(line: str) -> None:
    assert parse_ready(line) is None


def test_a_service_without_fields_is_ready_too() -> None:
    assert parse_ready("EV-READY bench-bare") == ("bench-bare", {})


_VALUES = st.text(st.characters(blacklist_categories=("Cs",))).filter(
    lambda v: not v or v.splitlines() == [v]
)


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), _VALUES))
def test_whatever_fits_on_one_line_is_read_back_as_it_was(fields: dict[str, str]) -> None:
    line = ready_line("svc", **fields)
    assert [line] == line.splitlines()
    assert parse_ready(line) == ("svc", fields)


LOG = """\
Supervising 2 Central workers on ports 7000-7001
Central listening on 127.0.0.1:7000
EV-READY central listen=127.0.0.1:7000 api=http://127.0.0.1:8001/api
EV-READY registry url=https://127.0.0.1:8443\r
EV-READY central listen=127.0.0.1:7001 api=http://127.0.0.1:8002/api
Central worker died; starting it again
EV-READY central listen=127.0.0.1:7000 api=http://127.0.0.1:8001/api
"""


def test_find_ready_lists_one_services_announcements_oldest_first() -> None:
    assert [f["listen"] for f in find_ready(LOG, "central")] == [
        "127.0.0.1:7000",
        "127.0.0.1:7001",
        "127.0.0.1:7000",
    ]
    assert find_ready(LOG, "registry") == [{"url": "https://127.0.0.1:8443"}]
    assert find_ready(LOG, "web") == []


def test_find_ready_tells_the_workers_of_one_central_apart() -> None:
    second = find_ready(LOG, "central", {"api": "http://127.0.0.1:8002/api"})
    assert second == [{"listen": "127.0.0.1:7001", "api": "http://127.0.0.1:8002/api"}]
    assert len(find_ready(LOG, "central", {"listen": "127.0.0.1:7000"})) == 2
    assert find_ready(LOG, "central", {"listen": "127.0.0.1:7002"}) == []
