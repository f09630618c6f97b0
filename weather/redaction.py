"""Keep secrets (the OpenWeather API key) out of every log line of the process.

The provider already builds its messages without the key; this filter is the second
line of defence, for records written by libraries (urllib3 logs request URLs, key
included, at DEBUG) and for tracebacks of unexpected errors.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

__all__ = ["MASK", "RedactingFilter", "install_redaction", "redact"]

MASK = "***"


def _variants(secrets: Iterable[str]) -> list[str]:
    out = {form for s in secrets if s for form in (s, quote(s, safe=""), quote_plus(s))}
    return sorted(out, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret (raw or URL-encoded) replaced by ``***``."""
    for secret in _variants(secrets):
        text = text.replace(secret, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record so that no secret reaches a handler."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = _variants(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = ()
        fields = dict(getattr(record, "fields", None) or {})
        if record.exc_info:
            fields["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = None
            record.exc_text = None
        if fields:
            record.fields = {
                k: v if isinstance(v, int | float) else redact(str(v), self._secrets)
                for k, v in fields.items()
            }
        return True


def install_redaction(secrets: Iterable[str], logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to every handler of ``logger`` (the root logger)."""
    wanted = [s for s in secrets if s]
    if not wanted:
        return
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(RedactingFilter(wanted))
