"""Structured logging: one line per record, ``key=value`` pairs, UTC timestamps.

Call :func:`setup_logging` once in a service's ``main``; pass context with
``log.info("cp connected", extra={"fields": {"cp_id": cp, "peer": addr}})``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

__all__ = ["KeyValueFormatter", "setup_logging"]


class KeyValueFormatter(logging.Formatter):
    """``2026-11-21T10:00:00.123Z INFO central msg="cp connected" cp_id=CP1``."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [
            f"{stamp}.{int(record.msecs):03d}Z",
            record.levelname,
            self._service,
            f"logger={record.name}",
            f"msg={json.dumps(record.getMessage(), ensure_ascii=False)}",
        ]
        fields: dict[str, Any] = getattr(record, "fields", {}) or {}
        for key, value in fields.items():
            text = value if isinstance(value, int | float) else json.dumps(str(value))
            parts.append(f"{key}={text}")
        if record.exc_info:
            parts.append(f"exc={json.dumps(self.formatException(record.exc_info))}")
        return " ".join(str(p) for p in parts)


def setup_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every log record of this process to ``stream`` (stderr) in key=value form."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(KeyValueFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Library chatter that says nothing to an operator.
    for noisy in ("werkzeug", "cheroot", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
