"""API tokens (contract §8): created, listed, revoked, and looked up by their secret's hash."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.api_tokens import format_scopes, hash_secret, parse_scopes
from webmacs.storage.auth_cache import AUTH_CACHE_MAX_ENTRIES, AUTH_CACHE_TTL_S, TtlCache, _trio_clock
from webmacs.storage.database import Database
from webmacs.storage.records import ApiTokenRecord, OpenSocketCredential, Page
from webmacs.storage.sql.common import SqlRepository, fetch_page
from webmacs.storage.tables import api_tokens, users
from webmacs.validation import is_public_id, new_public_id, utcnow

_COLUMNS = (
    api_tokens.c.public_id, api_tokens.c.name, api_tokens.c.role, api_tokens.c.scopes,
    api_tokens.c.created_at, api_tokens.c.expires_at, api_tokens.c.last_used_at,
    users.c.public_id, users.c.email,
)
_JOINED = api_tokens.join(users, api_tokens.c.user_id == users.c.id)


def _record(row: Any) -> ApiTokenRecord:
    return ApiTokenRecord(row[0], row[1], row[2], parse_scopes(row[3]), *row[4:])


class SqlApiTokenRepository(SqlRepository):
    async def create(self, owner_public_id: str, name: str, role: str, scopes: frozenset[str],
                     expires_at: datetime | None, secret: str) -> ApiTokenRecord | None:
        """Store a token whose secret is ``secret`` (only its hash); None if the owner is gone."""

        def run(conn: Connection) -> ApiTokenRecord | None:
            owner = conn.execute(sa.select(users.c.id, users.c.email)
                                 .where(users.c.public_id == owner_public_id)).first()
            if owner is None:
                return None
            record = ApiTokenRecord(new_public_id(), name, role, scopes, utcnow(), expires_at, None,
                                    owner_public_id, owner.email)
            conn.execute(api_tokens.insert().values(
                public_id=record.public_id, user_id=owner.id, name=name, role=role,
                scopes=format_scopes(scopes), secret_hash=hash_secret(secret),
                created_at=record.created_at, expires_at=expires_at))
            return record

        return await self.db.write(run)

    async def page(self, offset: int, limit: int, owner_public_id: str | None) -> Page[ApiTokenRecord]:
        """Newest first; one owner's, or everyone's (``None``)."""
        query = sa.select(*_COLUMNS).select_from(_JOINED)
        count = sa.select(sa.func.count()).select_from(_JOINED)
        if owner_public_id is not None:
            query = query.where(users.c.public_id == owner_public_id)
            count = count.where(users.c.public_id == owner_public_id)
        query = query.order_by(api_tokens.c.created_at.desc(), api_tokens.c.id.desc())
        return await self.db.read(lambda c: fetch_page(c, query, count, offset, limit, _record))

    async def get(self, public_id: str) -> ApiTokenRecord | None:
        if not is_public_id(public_id):
            return None
        query = sa.select(*_COLUMNS).select_from(_JOINED).where(api_tokens.c.public_id == public_id)
        row = await self.db.read(lambda c: c.execute(query).first())
        return None if row is None else _record(row)

    async def find(self, secret: str) -> ApiTokenRecord | None:
        """The token whose secret is ``secret``, expired or not."""
        query = (sa.select(*_COLUMNS).select_from(_JOINED)
                 .where(api_tokens.c.secret_hash == hash_secret(secret)))
        row = await self.db.read(lambda c: c.execute(query).first())
        return None if row is None else _record(row)

    async def delete(self, public_id: str) -> bool:
        if not is_public_id(public_id):
            return False
        stmt = api_tokens.delete().where(api_tokens.c.public_id == public_id)
        return await self.db.write(lambda c: c.execute(stmt).rowcount > 0)

    async def touch(self, used: Mapping[str, datetime]) -> None:
        """Set ``last_used_at`` of many tokens in one statement (a revoked one is skipped)."""
        if not used:
            return
        stmt = (api_tokens.update().where(api_tokens.c.public_id == sa.bindparam("pid"))
                .values(last_used_at=sa.bindparam("used")))
        params = [{"pid": pid, "used": when} for pid, when in used.items()]
        await self.db.write(lambda c: c.execute(stmt, params))

    async def credentials(self, public_ids: Collection[str]) -> dict[str, OpenSocketCredential]:
        """Those of ``public_ids`` that still exist, with their owners (one query)."""
        if not public_ids:
            return {}
        query = (sa.select(api_tokens.c.public_id, api_tokens.c.role, api_tokens.c.expires_at,
                           users.c.public_id, users.c.role)
                 .select_from(_JOINED).where(api_tokens.c.public_id.in_(list(public_ids))))
        rows = await self.db.read(lambda c: c.execute(query).all())
        return {r[0]: OpenSocketCredential(*r) for r in rows}


class CachedApiTokenRepository(SqlApiTokenRepository):
    """Lookups by secret cached for at most ``ttl`` (1 s): a revocation made here is seen at
    once (the cache forgets the token), one made elsewhere within ``ttl``."""

    def __init__(self, db: Database, clock: Callable[[], float] = _trio_clock,
                 ttl: float = AUTH_CACHE_TTL_S) -> None:
        super().__init__(db)
        self.cache: TtlCache[str, ApiTokenRecord | None] = TtlCache(ttl, AUTH_CACHE_MAX_ENTRIES, clock)
        self._hash_of: dict[str, str] = {}  # public id -> cache key, to forget on revocation

    async def find(self, secret: str) -> ApiTokenRecord | None:
        key = hash_secret(secret)
        found, record = self.cache.get(key)
        if found:
            return record
        generation = self.cache.generation(key)
        record = await super().find(secret)
        if record is not None:
            if len(self._hash_of) >= AUTH_CACHE_MAX_ENTRIES:
                self._hash_of.clear()
            self._hash_of[record.public_id] = key
        self.cache.put(key, record, generation)
        return record

    async def delete(self, public_id: str) -> bool:
        try:
            return await super().delete(public_id)
        finally:
            key = self._hash_of.pop(public_id, None)
            if key is not None:
                self.cache.invalidate(key)
