"""What clients may send: ids, locations, prices, secrets."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from registry.errors import InvalidInput
from registry.validation import (
    check_cp_id,
    check_location,
    check_price,
    check_secret_shape,
    parse_price,
)


@pytest.mark.parametrize("cp_id", ["CP1", "a", "A" * 32, "cp_01-x", "0"])
def test_good_ids(cp_id: str) -> None:
    assert check_cp_id(cp_id) == cp_id


@pytest.mark.parametrize(
    "cp_id", ["", "A" * 33, "CP 1", "CP/1", "CP.1", "ĆP1", "CP1\n", 7, None, ["CP1"]]
)
def test_bad_ids(cp_id: Any) -> None:
    with pytest.raises(InvalidInput, match="1-32 characters"):
        check_cp_id(cp_id)


@pytest.mark.parametrize("location", ["Madrid", "x", "L" * 64, "Alacant / Alicante", "Åre"])
def test_good_locations(location: str) -> None:
    assert check_location(location) == location


@pytest.mark.parametrize("location", ["", "   ", "L" * 65, "Mad\nrid", "tab\there", "\x00", 3])
def test_bad_locations(location: Any) -> None:
    with pytest.raises(InvalidInput, match="location"):
        check_location(location)


@pytest.mark.parametrize(
    ("raw", "price"),
    [
        (Decimal("0.35"), Decimal("0.35")),
        ("0.3512", Decimal("0.3512")),
        (0, Decimal(0)),
        (1, Decimal(1)),
        (100, Decimal(100)),
    ],
)
def test_good_prices(raw: Any, price: Decimal) -> None:
    assert check_price(raw) == price


@pytest.mark.parametrize(
    "raw",
    [True, None, [], "abc", "NaN", "Infinity", Decimal("-0.01"), 100.5, "0.12345", "1e400"],
)
def test_bad_prices(raw: Any) -> None:
    with pytest.raises(InvalidInput, match="price"):
        check_price(raw)


def test_default_price_flag_shares_the_rules() -> None:
    assert parse_price(" 0.30 ") == Decimal("0.30")
    with pytest.raises(ValueError, match="between 0 and 100"):
        parse_price("-1")


@pytest.mark.parametrize("secret", ["x", "9ry-7Uea7mitw-9G5u0ETYURKiY1Lxspvrm4PJOQJL0", "!" * 256])
def test_secret_shapes_we_might_have_issued(secret: str) -> None:
    assert check_secret_shape(secret) == secret


@pytest.mark.parametrize("secret", ["", "a b", "x" * 257, "\ud800", "é", 42, None])
def test_secret_shapes_we_never_issue(secret: Any) -> None:
    assert check_secret_shape(secret) is None
