"""The service file of ``ev-driver run``: what is a service, what is reported."""

from __future__ import annotations

import pytest

from driver.servicefile import LineProblem, Service, parse_service_file


def test_services_comments_blank_lines_and_targets() -> None:
    text = (
        "# morning round\n"
        "CP1\n"
        "\n"
        "   \t\n"
        "CP-2 5        # inline comment\n"
        "  cp_3   7.5  \n"
        "CP4 1e1\n"
        "#CP5 is commented out\n"
    )
    parsed = parse_service_file(text)
    assert parsed.services == (
        Service(2, "CP1"),
        Service(5, "CP-2", 5.0),
        Service(6, "cp_3", 7.5),
        Service(7, "CP4", 10.0),
    )
    assert parsed.problems == ()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("CP1 5 kWh", "expected 'CP_ID [KWH]', found 3 fields: CP1 5 kWh"),
        ("CP1 lots", "target 'lots' is not a number of kWh"),
        ("CP1 0", "target 0 kWh must be a number greater than 0"),
        ("CP1 -2", "target -2 kWh must be a number greater than 0"),
        ("CP1 nan", "target nan kWh must be a number greater than 0"),
        ("CP1 inf", "target inf kWh must be a number greater than 0"),
        ("CP/1", "'CP/1' is not a charge point id (1-32 letters, digits, '-' or '_')"),
        ("C" * 33, f"'{'C' * 33}' is not a charge point id (1-32 letters, digits, '-' or '_')"),
        ("CPé", "'CPé' is not a charge point id (1-32 letters, digits, '-' or '_')"),
    ],
)
def test_a_malformed_line_is_reported_with_its_number(line: str, message: str) -> None:
    parsed = parse_service_file(f"CP1\n{line}\nCP2 3\n")
    assert parsed.problems == (LineProblem(2, message),)
    assert str(parsed.problems[0]) == f"line 2: {message}"
    assert parsed.services == (Service(1, "CP1"), Service(3, "CP2", 3.0))  # carries on


def test_long_garbage_is_shortened_in_the_message() -> None:
    parsed = parse_service_file("CP1 " + "x" * 200)
    (problem,) = parsed.problems
    assert len(problem.message) < 80 and problem.message.endswith("…' is not a number of kWh")


def test_windows_line_endings_and_an_empty_file() -> None:
    assert parse_service_file("CP1\r\nCP2 2\r\n").services == (
        Service(1, "CP1"),
        Service(2, "CP2", 2.0),
    )
    empty = parse_service_file("")
    assert empty.services == () and empty.problems == ()
