"""Users and revoked tokens."""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.storage.protocols import Conflict
from webmacs.storage.records import Page, UserChanges, UserRecord
from webmacs.storage.sql.common import SqlRepository, fetch_page
from webmacs.storage.tables import revoked_tokens, users
from webmacs.validation import is_public_id, new_public_id, utcnow

_COLUMNS = (
    users.c.public_id, users.c.email, users.c.username, users.c.admin, users.c.registered_on,
    users.c.password_hash, users.c.tokens_valid_after,
)
USER_EXISTS = "User already exists."


def _user(row: Any) -> UserRecord:
    return UserRecord(*row)


def _taken(conn: Connection, email: str | None, username: str | None, except_id: str | None) -> bool:
    clauses = []
    if email is not None:
        clauses.append(users.c.email == email)
    if username is not None:
        clauses.append(users.c.username == username)
    if not clauses:
        return False
    query = sa.select(users.c.id).where(sa.or_(*clauses))
    if except_id is not None:
        query = query.where(users.c.public_id != except_id)
    return conn.execute(query.limit(1)).first() is not None


class SqlUserRepository(SqlRepository):
    async def seed_admin(self, email: str, username: str, password_hash: str) -> bool:
        """Create the first admin if, and only if, the table is empty (decided in one transaction)."""

        def run(conn: Connection) -> bool:
            if conn.execute(sa.select(users.c.id).limit(1)).first() is not None:
                return False
            conn.execute(
                users.insert().values(
                    public_id=new_public_id(), email=email, username=username,
                    password_hash=password_hash, admin=True, registered_on=utcnow(),
                )
            )
            return True

        try:
            return await self.db.write(run)
        except sa.exc.IntegrityError:
            return False  # another worker seeded at the same moment

    async def page(self, offset: int, limit: int) -> Page[UserRecord]:
        query = sa.select(*_COLUMNS).order_by(users.c.registered_on, users.c.id)
        count = sa.select(sa.func.count()).select_from(users)
        return await self.db.read(lambda c: fetch_page(c, query, count, offset, limit, _user))

    async def get(self, public_id: str) -> UserRecord | None:
        if not is_public_id(public_id):  # e.g. the ``sub`` of a foreign token
            return None
        query = sa.select(*_COLUMNS).where(users.c.public_id == public_id)
        row = await self.db.read(lambda c: c.execute(query).first())
        return None if row is None else _user(row)

    async def get_by_email(self, email: str) -> UserRecord | None:
        query = sa.select(*_COLUMNS).where(users.c.email == email)
        row = await self.db.read(lambda c: c.execute(query).first())
        return None if row is None else _user(row)

    async def create(self, email: str, username: str, password_hash: str, admin: bool) -> UserRecord:
        def run(conn: Connection) -> UserRecord:
            if _taken(conn, email, username, None):
                raise Conflict(USER_EXISTS)
            record = UserRecord(new_public_id(), email, username, admin, utcnow(), password_hash, None)
            conn.execute(
                users.insert().values(
                    public_id=record.public_id, email=email, username=username,
                    password_hash=password_hash, admin=admin, registered_on=record.registered_on,
                )
            )
            return record

        return await self.write_retrying(run)

    async def update(self, public_id: str, changes: UserChanges) -> bool:
        def run(conn: Connection) -> bool:
            found = conn.execute(sa.select(users.c.id).where(users.c.public_id == public_id)).first()
            if found is None:
                return False
            if _taken(conn, changes.email, changes.username, public_id):
                raise Conflict(USER_EXISTS)
            values: dict[str, Any] = {
                k: v for k, v in (("email", changes.email), ("username", changes.username),
                                  ("admin", changes.admin)) if v is not None
            }
            if changes.password_hash is not None:
                values["password_hash"] = changes.password_hash
                values["tokens_valid_after"] = utcnow()
            if values:
                conn.execute(users.update().where(users.c.id == found.id).values(**values))
            return True

        return await self.write_retrying(run)

    async def delete(self, public_id: str) -> bool:
        def run(conn: Connection) -> bool:
            return conn.execute(users.delete().where(users.c.public_id == public_id)).rowcount > 0

        return await self.db.write(run)


class SqlTokenRepository(SqlRepository):
    async def revoke(self, jti: str, expires_at: datetime) -> None:
        def run(conn: Connection) -> None:
            exists = conn.execute(sa.select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == jti))
            if exists.first() is None:
                conn.execute(revoked_tokens.insert().values(jti=jti, expires_at=expires_at))

        with contextlib.suppress(sa.exc.IntegrityError):  # revoked concurrently: same outcome
            await self.db.write(run)

    async def is_revoked(self, jti: str) -> bool:
        query = sa.select(revoked_tokens.c.jti).where(revoked_tokens.c.jti == jti)
        return await self.db.read(lambda c: c.execute(query).first() is not None)

    async def prune(self, now: datetime) -> int:
        def run(conn: Connection) -> int:
            stmt = revoked_tokens.delete().where(revoked_tokens.c.expires_at < now)
            return int(conn.execute(stmt).rowcount)

        return await self.db.write(run)
