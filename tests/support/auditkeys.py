"""One audit key for a test run: every process and database a test opens signs with it."""

from __future__ import annotations

from common.db.auditkeys import AuditKeys, new_key_text

__all__ = ["TEST_AUDIT_KEY", "TEST_AUDIT_KEYS"]

TEST_AUDIT_KEY = new_key_text()  # fresh per run: no key is ever in the repository
TEST_AUDIT_KEYS = AuditKeys.from_text(TEST_AUDIT_KEY)
