"""The audit keys: where they come from, their ids, rotation; checkpoints' signatures."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from common.db.auditkeys import KEY_FILE, AuditKeys, load_audit_keys, new_key_text
from common.db.chain import Checkpoint
from common.errors import ConfigError

OLD, NEW = new_key_text(), new_key_text()


def test_the_first_key_signs_and_every_key_verifies() -> None:
    keys = AuditKeys.from_text(f"{NEW}\n# retired on 2026-12-01:\n{OLD}  # still verifies\n")
    old_only = AuditKeys.from_text(OLD)
    assert keys.current == AuditKeys.from_text(NEW).current != old_only.current
    assert set(keys.keys) == {keys.current, old_only.current}
    assert keys.sign(old_only.current, b"m") == old_only.sign(old_only.current, b"m")
    assert OLD not in keys.current and len(keys.current) == 16  # an id, not the key


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "no key given"), ("# only a comment", "no key given"), ("short", "too short")],
)
def test_malformed_keys_are_one_clear_error(text: str, why: str) -> None:
    with pytest.raises(ConfigError, match=f"EV_AUDIT_KEY: .*{why}"):
        AuditKeys.from_text(text)


def test_the_environment_wins_then_the_file_then_the_data_dir(tmp_path: Path) -> None:
    key_file = tmp_path / "given.key"
    key_file.write_text(f"{NEW} {OLD}\n")
    from_env = load_audit_keys(tmp_path, {"EV_AUDIT_KEY": OLD, "EV_AUDIT_KEY_FILE": str(key_file)})
    assert from_env == AuditKeys.from_text(OLD)
    assert load_audit_keys(tmp_path, {"EV_AUDIT_KEY_FILE": str(key_file)}).current == (
        AuditKeys.from_text(NEW).current
    )
    assert not (tmp_path / KEY_FILE).exists()
    with pytest.raises(ConfigError, match="EV_AUDIT_KEY_FILE: cannot read"):
        load_audit_keys(tmp_path, {"EV_AUDIT_KEY_FILE": str(tmp_path / "missing")})


def test_without_a_key_one_is_made_once_in_the_data_dir_readable_only_by_us(
    tmp_path: Path,
) -> None:
    first = load_audit_keys(tmp_path / "data", {})
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_audit_keys(tmp_path / "data", {}) == first  # the same key at every start
    assert load_audit_keys(tmp_path / "other", {}) != first


def test_a_checkpoint_verifies_only_under_its_key_and_unchanged() -> None:
    keys = AuditKeys.from_text(NEW)
    checkpoint = Checkpoint.make(keys, (41, "ab" * 32), datetime(2026, 12, 7, tzinfo=UTC))
    assert checkpoint.valid(keys)
    assert checkpoint.valid(AuditKeys.from_text(f"{OLD} {NEW}"))  # after a rotation
    assert not checkpoint.valid(AuditKeys.from_text(OLD))
    assert Checkpoint.from_dict(checkpoint.to_dict()) == checkpoint
    for change in ({"entry_id": 40}, {"hash": "cd" * 32}, {"ts": "2026-12-08T00:00:00+00:00"}):
        assert not Checkpoint.from_dict({**checkpoint.to_dict(), **change}).valid(keys)
    with pytest.raises(ValueError):
        Checkpoint.from_dict({**checkpoint.to_dict(), "ts": "2026-12-08T00:00:00"})
