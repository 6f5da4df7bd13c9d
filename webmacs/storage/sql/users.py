"""Users and revoked tokens."""

from __future__ import annotations

import contextlib
from collections.abc import Collection
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.roles import Role
from webmacs.storage.protocols import Conflict
from webmacs.storage.records import LoginState, Page, UserChanges, UserRecord
from webmacs.storage.sql.common import SqlRepository, fetch_page
from webmacs.storage.tables import revoked_tokens, users
from webmacs.validation import is_public_id, new_public_id, utcnow

_COLUMNS = (
    users.c.public_id, users.c.email, users.c.username, users.c.role, users.c.registered_on,
    users.c.password_hash, users.c.tokens_valid_after,
)
USER_EXISTS = "User already exists."
LAST_ADMIN = "The last admin cannot be demoted or deleted."


def _user(row: Any) -> UserRecord:
    public_id, email, username, role, *rest = row
    # The check constraint admits only known labels; least privilege if one ever slips through.
    return UserRecord(public_id, email, username, Role.parse(role) or Role.VIEWER, *rest)


def _refuse_last_admin(conn: Connection, user_id: int) -> None:
    """:class:`Conflict` if ``user_id`` is the only admin. The admins' rows are locked (PostgreSQL)
    so that two concurrent demotions cannot each see the other's admin and leave none."""
    admins = conn.execute(
        sa.select(users.c.id).where(users.c.role == Role.ADMIN.label).with_for_update()
    ).scalars().all()
    if list(admins) == [user_id]:
        raise Conflict(LAST_ADMIN)


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
                    password_hash=password_hash, role=Role.ADMIN.label, registered_on=utcnow(),
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

    async def create(self, email: str, username: str, password_hash: str, role: Role) -> UserRecord:
        def run(conn: Connection) -> UserRecord:
            if _taken(conn, email, username, None):
                raise Conflict(USER_EXISTS)
            record = UserRecord(new_public_id(), email, username, role, utcnow(), password_hash, None)
            conn.execute(
                users.insert().values(
                    public_id=record.public_id, email=email, username=username,
                    password_hash=password_hash, role=role.label, registered_on=record.registered_on,
                )
            )
            return record

        return await self.write_retrying(run)

    async def update(self, public_id: str, changes: UserChanges) -> bool:
        """Apply ``changes``; :class:`Conflict` for a taken email or username, or for demoting
        the last admin (decided in the transaction that writes)."""

        def run(conn: Connection) -> bool:
            found = conn.execute(
                sa.select(users.c.id, users.c.role).where(users.c.public_id == public_id)
            ).first()
            if found is None:
                return False
            if _taken(conn, changes.email, changes.username, public_id):
                raise Conflict(USER_EXISTS)
            values: dict[str, Any] = {
                k: v for k, v in (("email", changes.email), ("username", changes.username)) if v is not None
            }
            if changes.role is not None and changes.role.label != found.role:
                if found.role == Role.ADMIN.label:
                    _refuse_last_admin(conn, found.id)
                values["role"] = changes.role.label
            if changes.password_hash is not None:
                values["password_hash"] = changes.password_hash
                values["tokens_valid_after"] = utcnow()
            if values:
                conn.execute(users.update().where(users.c.id == found.id).values(**values))
            return True

        return await self.write_retrying(run)

    async def delete(self, public_id: str) -> bool:
        """Delete the user; :class:`Conflict` if they are the last admin."""

        def run(conn: Connection) -> bool:
            found = conn.execute(
                sa.select(users.c.id, users.c.role).where(users.c.public_id == public_id)
            ).first()
            if found is None:
                return False
            if found.role == Role.ADMIN.label:
                _refuse_last_admin(conn, found.id)
            return conn.execute(users.delete().where(users.c.id == found.id)).rowcount > 0

        return await self.db.write(run)

    async def login_state(self, owners: Collection[str], jtis: Collection[str]) -> LoginState:
        """The owners' roles and password-change times and the revoked ids among ``jtis``, read
        afresh (never from a cache) in one transaction: the credential watcher's question."""
        wanted = [o for o in owners if is_public_id(o)]
        by_owner = sa.select(users.c.public_id, users.c.role, users.c.tokens_valid_after).where(
            users.c.public_id.in_(wanted))
        revoked = sa.select(revoked_tokens.c.jti).where(revoked_tokens.c.jti.in_(list(jtis)))

        def run(conn: Connection) -> LoginState:
            found = {
                str(pid): (Role.parse(role) or Role.VIEWER, valid_after)
                for pid, role, valid_after in (conn.execute(by_owner) if wanted else ())
            }
            gone = frozenset(str(j) for j in conn.execute(revoked).scalars()) if jtis else frozenset()
            return LoginState(found, gone)

        return await self.db.read(run)


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
