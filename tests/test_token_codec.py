"""Token verification, including the cache of verified tokens."""

from __future__ import annotations

import time

import pytest

from webmacs import security
from webmacs.security import TokenCodec


def test_verified_tokens_are_cached_until_they_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    codec = TokenCodec("a-secret-that-is-long-enough-0123456789abcdef", expire_minutes=1)
    token = codec.issue("user-1")
    first = codec.decode(token)
    assert first is not None and first.sub == "user-1"
    assert codec.decode(token) is first  # from the cache
    now = time.time()
    monkeypatch.setattr(security.time, "time", lambda: now + 61)
    assert codec.decode(token) is None  # expired, cached or not


def test_bad_tokens_are_refused_every_time_and_not_cached() -> None:
    codec = TokenCodec("a-secret-that-is-long-enough-0123456789abcdef", expire_minutes=1)
    other = TokenCodec("another-secret-that-is-long-enough-0123456789", expire_minutes=1)
    forged = other.issue("user-1")
    assert codec.decode(forged) is None and codec.decode(forged) is None
    assert codec.decode("not a token") is None


def test_the_cache_is_bounded() -> None:
    codec = TokenCodec("a-secret-that-is-long-enough-0123456789abcdef", expire_minutes=1)
    tokens = [codec.issue(f"user-{i}") for i in range(TokenCodec.CACHE_SIZE + 10)]
    assert all(codec.decode(t) is not None for t in tokens)
    assert len(codec._verified) <= TokenCodec.CACHE_SIZE
    assert codec.decode(tokens[0]) is not None  # verified again after it was dropped
