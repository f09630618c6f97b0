"""common.limits: the open-file limit, raised as far as the hard limit (or root) allows."""

from __future__ import annotations

import resource

import pytest

from common.limits import raise_open_files_limit

INF = resource.RLIM_INFINITY


class FakeLimits:
    """RLIMIT_NOFILE of a pretend process; ``root`` may raise the hard limit."""

    def __init__(self, soft: int, hard: int, *, root: bool = False) -> None:
        self.soft, self.hard, self.root = soft, hard, root
        self.calls: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        assert which == resource.RLIMIT_NOFILE
        self.calls.append(limits)
        soft, hard = limits
        raising_hard = self.hard != INF and (hard == INF or hard > self.hard)
        if raising_hard and not self.root:
            raise ValueError("not allowed to raise maximum limit")
        self.soft, self.hard = soft, hard


@pytest.fixture
def limits(monkeypatch: pytest.MonkeyPatch) -> FakeLimits:
    fake = FakeLimits(1024, 4096)
    monkeypatch.setattr(resource, "getrlimit", fake.getrlimit)
    monkeypatch.setattr(resource, "setrlimit", fake.setrlimit)
    return fake


def test_without_a_number_the_soft_limit_goes_up_to_the_hard_one(limits: FakeLimits) -> None:
    assert raise_open_files_limit() == 4096
    assert (limits.soft, limits.hard) == (4096, 4096)


def test_an_unlimited_hard_limit_allows_a_million(limits: FakeLimits) -> None:
    limits.hard = INF
    assert raise_open_files_limit() == 1 << 20
    assert (limits.soft, limits.hard) == (1 << 20, INF)


def test_an_unlimited_soft_limit_is_left_alone(limits: FakeLimits) -> None:
    limits.soft = limits.hard = INF
    assert raise_open_files_limit(65536) == INF
    assert limits.calls == []


def test_a_limit_already_high_enough_is_left_alone(limits: FakeLimits) -> None:
    limits.soft = 8192
    limits.hard = 8192
    assert raise_open_files_limit(2048) == 8192
    assert limits.calls == []


def test_wanting_more_than_the_hard_limit_gets_the_hard_limit(limits: FakeLimits) -> None:
    assert raise_open_files_limit(65536) == 4096
    assert (limits.soft, limits.hard) == (4096, 4096)
    assert limits.calls == [(65536, 65536), (4096, 4096)]  # tried the hard limit first


def test_root_raises_the_hard_limit_too(limits: FakeLimits) -> None:
    limits.root = True
    assert raise_open_files_limit(65536) == 65536
    assert (limits.soft, limits.hard) == (65536, 65536)


def test_below_the_hard_limit_only_the_soft_one_moves(limits: FakeLimits) -> None:
    assert raise_open_files_limit(2000) == 2000
    assert (limits.soft, limits.hard) == (2000, 4096)


def test_a_refusal_keeps_the_limit_in_force(
    limits: FakeLimits, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(which: int, values: tuple[int, int]) -> None:
        raise OSError("not permitted")

    monkeypatch.setattr(resource, "setrlimit", refuse)
    assert raise_open_files_limit() == 1024


def test_the_real_limit_is_at_least_what_it_was() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    after = raise_open_files_limit()
    assert after == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert after == INF or (before != INF and after >= before)
