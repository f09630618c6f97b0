"""Validation of what clients send: ids, locations, prices, secrets. Pure functions.

Each ``check_*`` returns the value in canonical form or raises :class:`InvalidInput`
with a message naming the field.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

from registry.errors import InvalidInput

__all__ = [
    "MAX_PRICE",
    "check_cp_id",
    "check_location",
    "check_price",
    "check_secret_shape",
    "parse_price",
]

_CP_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
# Secrets are issued by us (43 URL-safe characters); anything far off cannot be one.
_SECRET = re.compile(r"[\x21-\x7e]{1,256}")
MAX_PRICE = Decimal(100)
_PRICE_PLACES = 4  # the price column is NUMERIC(14, 4)


def check_cp_id(value: Any, field: str = "id") -> str:
    """1-32 characters of ``A-Z a-z 0-9 - _``."""
    if not isinstance(value, str) or not _CP_ID.fullmatch(value):
        raise InvalidInput(f"{field} must be 1-32 characters of letters, digits, '-' or '_'")
    return value


def check_location(value: Any) -> str:
    """1-64 printable characters, not only blanks."""
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= 64
        or not value.isprintable()
        or not value.strip()
    ):
        raise InvalidInput("location must be 1-64 printable characters")
    return value


def check_price(value: Any) -> Decimal:
    """A price in EUR/kWh from JSON: a number or a decimal string, 0 to 100, 4 places at most."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise InvalidInput("price must be a number of EUR per kWh, for example 0.35")
    try:
        return parse_price(str(value))
    except ValueError as exc:
        raise InvalidInput(f"price {exc}") from None


def parse_price(text: str) -> Decimal:
    """Parse a price (also used for ``--default-price``). Raises ValueError."""
    try:
        price = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError("must be a decimal number of EUR per kWh, for example 0.35") from None
    if not price.is_finite() or not Decimal(0) <= price <= MAX_PRICE:
        raise ValueError(f"must be between 0 and {MAX_PRICE} EUR per kWh")
    exponent = price.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_PRICE_PLACES:
        raise ValueError(f"must have at most {_PRICE_PLACES} decimal places")
    return price


def check_secret_shape(value: Any) -> str | None:
    """The secret if it could be one we issued (1-256 visible ASCII characters), else None.

    A malformed secret is simply a wrong one: callers treat None as a failed attempt.
    """
    if isinstance(value, str) and _SECRET.fullmatch(value):
        return value
    return None
