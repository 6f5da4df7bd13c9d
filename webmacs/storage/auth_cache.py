"""What every authenticated request looks up, kept in memory for a second.

Each request checks its token's revocation and loads its user (§3.4): two database round trips
through worker threads, ~15 % of the loop's busy time under page loads. Both change rarely, so
they are cached briefly:

- writes made through this process (logout, password change, user update or delete) take effect
  here at once: the cache is updated or invalidated after the commit;
- writes made elsewhere (another process on the same database, a CLI) are seen within ``ttl``
  (1 s), the bound the multi-instance design promises for revocations.

A lookup that was in flight while a write invalidated its key does not store its (possibly
stale) answer: every key has a generation, bumped by each invalidation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Generic, TypeVar

import trio

from webmacs.roles import Role
from webmacs.storage.database import Database
from webmacs.storage.records import UserChanges, UserRecord
from webmacs.storage.sql.users import SqlTokenRepository, SqlUserRepository

K = TypeVar("K")
V = TypeVar("V")

AUTH_CACHE_TTL_S = 1.0
AUTH_CACHE_MAX_ENTRIES = 10_000


class TtlCache(Generic[K, V]):
    """Sans-IO: a bounded map whose entries expire ``ttl`` after they were stored (by ``clock``)."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._generations: dict[K, int] = {}

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value): found is False for a missing or expired entry."""
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self.clock():
            return False, None
        return True, entry[1]

    def generation(self, key: K) -> int:
        return self._generations.get(key, 0)

    def put(self, key: K, value: V, generation: int) -> None:
        """Store ``value`` unless ``key`` was invalidated since ``generation`` was read."""
        if self.generation(key) != generation:
            return
        self._entries[key] = (self.clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            old, _ = self._entries.popitem(last=False)
            self._generations.pop(old, None)

    def invalidate(self, key: K) -> None:
        self._entries.pop(key, None)
        self._generations[key] = self.generation(key) + 1


def _trio_clock() -> float:
    return trio.current_time()


class CachedUserRepository(SqlUserRepository):
    """Users by public id, cached; every write through it invalidates what it touched."""

    def __init__(self, db: Database, clock: Callable[[], float] = _trio_clock,
                 ttl: float = AUTH_CACHE_TTL_S) -> None:
        super().__init__(db)
        self.cache: TtlCache[str, UserRecord | None] = TtlCache(ttl, AUTH_CACHE_MAX_ENTRIES, clock)

    async def get(self, public_id: str) -> UserRecord | None:
        found, user = self.cache.get(public_id)
        if found:
            return user
        generation = self.cache.generation(public_id)
        user = await super().get(public_id)
        self.cache.put(public_id, user, generation)
        return user

    async def create(self, email: str, username: str, password_hash: str, role: Role) -> UserRecord:
        record = await super().create(email, username, password_hash, role)
        self.cache.invalidate(record.public_id)  # a lookup of the new id may have cached "none"
        return record

    async def update(self, public_id: str, changes: UserChanges) -> bool:
        try:
            return await super().update(public_id, changes)
        finally:
            self.cache.invalidate(public_id)

    async def delete(self, public_id: str) -> bool:
        try:
            return await super().delete(public_id)
        finally:
            self.cache.invalidate(public_id)


class CachedTokenRepository(SqlTokenRepository):
    """Revocations: known at once when made here, looked up (and cached briefly) otherwise."""

    def __init__(self, db: Database, clock: Callable[[], float] = _trio_clock,
                 ttl: float = AUTH_CACHE_TTL_S) -> None:
        super().__init__(db)
        self.cache: TtlCache[str, bool] = TtlCache(ttl, AUTH_CACHE_MAX_ENTRIES, clock)

    async def revoke(self, jti: str, expires_at: datetime) -> None:
        try:
            await super().revoke(jti, expires_at)
        finally:
            self.cache.invalidate(jti)
        # Committed: a revocation is permanent (until the token expires anyway).
        self.cache.put(jti, True, self.cache.generation(jti))

    async def is_revoked(self, jti: str) -> bool:
        found, revoked = self.cache.get(jti)
        if found:
            return bool(revoked)
        generation = self.cache.generation(jti)
        revoked = await super().is_revoked(jti)
        self.cache.put(jti, revoked, generation)
        return revoked
