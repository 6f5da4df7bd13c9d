"""Log entries (the operator-facing journal)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.storage.records import LogEntryRecord, Page
from webmacs.storage.sql.common import SqlRepository, creator_id, fetch_page
from webmacs.storage.tables import log_entries, users
from webmacs.validation import new_public_id, utcnow

_SELECT = sa.select(
    log_entries.c.public_id, log_entries.c.content, log_entries.c.logging_type,
    log_entries.c.status_type, users.c.public_id, log_entries.c.created_on,
).select_from(log_entries.outerjoin(users, users.c.id == log_entries.c.user_id))


def _entry(row: Any) -> LogEntryRecord:
    return LogEntryRecord(*row)


class SqlLogRepository(SqlRepository):
    async def page(self, offset: int, limit: int) -> Page[LogEntryRecord]:
        query = _SELECT.order_by(log_entries.c.created_on.desc(), log_entries.c.id.desc())
        count = sa.select(sa.func.count()).select_from(log_entries)
        return await self.db.read(lambda c: fetch_page(c, query, count, offset, limit, _entry))

    async def get(self, public_id: str) -> LogEntryRecord | None:
        query = _SELECT.where(log_entries.c.public_id == public_id)
        row = await self.db.read(lambda c: c.execute(query).first())
        return None if row is None else _entry(row)

    async def create(
        self, content: str, logging_type: str, user_public_id: str | None
    ) -> LogEntryRecord:
        record = LogEntryRecord(new_public_id(), content, logging_type, "unread", user_public_id, utcnow())

        def run(conn: Connection) -> LogEntryRecord:
            conn.execute(
                log_entries.insert().values(
                    public_id=record.public_id, content=content, logging_type=logging_type,
                    status_type="unread", user_id=creator_id(user_public_id),
                    created_on=record.created_on,
                )
            )
            return record

        return await self.db.write(run)

    async def update(self, public_id: str, status_type: str | None, content: str | None) -> bool:
        values = {k: v for k, v in (("status_type", status_type), ("content", content)) if v is not None}

        def run(conn: Connection) -> bool:
            where = log_entries.c.public_id == public_id
            if not values:
                return conn.execute(sa.select(log_entries.c.id).where(where)).first() is not None
            return conn.execute(log_entries.update().where(where).values(**values)).rowcount > 0

        return await self.db.write(run)

    async def delete(self, public_id: str) -> bool:
        def run(conn: Connection) -> bool:
            stmt = log_entries.delete().where(log_entries.c.public_id == public_id)
            return conn.execute(stmt).rowcount > 0

        return await self.db.write(run)
