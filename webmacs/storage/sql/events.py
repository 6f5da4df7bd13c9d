"""Events: the sensor and actuator channels."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.storage.protocols import Conflict, InvalidRange
from webmacs.storage.records import EventFields, EventRecord, Page
from webmacs.storage.sql.common import SqlRepository, creator_id, fetch_page
from webmacs.storage.tables import events, users
from webmacs.validation import new_public_id, utcnow

EVENT_EXISTS = "Event already exists."
_SELECT = sa.select(
    events.c.public_id, events.c.name, events.c.min_value, events.c.max_value, events.c.unit,
    events.c.type, users.c.public_id,
).select_from(events.outerjoin(users, users.c.id == events.c.user_id))


def _event(row: Any) -> EventRecord:
    return EventRecord(*row)


def _name_taken(conn: Connection, name: str, except_id: str | None = None) -> bool:
    query = sa.select(events.c.id).where(events.c.name == name)
    if except_id is not None:
        query = query.where(events.c.public_id != except_id)
    return conn.execute(query.limit(1)).first() is not None


class SqlEventRepository(SqlRepository):
    async def page(self, offset: int, limit: int) -> Page[EventRecord]:
        query = _SELECT.order_by(events.c.created_on, events.c.id)
        count = sa.select(sa.func.count()).select_from(events)
        return await self.db.read(lambda c: fetch_page(c, query, count, offset, limit, _event))

    async def ordered_ids(self) -> list[str]:
        """Every event's public id in listing order (what ``/datapoints/latest`` follows)."""
        query = sa.select(events.c.public_id).order_by(events.c.created_on, events.c.id)
        return await self.db.read(lambda c: [str(pid) for pid in c.execute(query).scalars()])

    async def get(self, public_id: str) -> EventRecord | None:
        row = await self.db.read(lambda c: c.execute(_SELECT.where(events.c.public_id == public_id)).first())
        return None if row is None else _event(row)

    async def create(self, fields: EventFields, user_public_id: str | None) -> EventRecord:
        assert fields.name is not None and fields.unit is not None and fields.type is not None
        assert fields.min_value is not None and fields.max_value is not None
        if fields.min_value > fields.max_value:
            raise InvalidRange()
        record = EventRecord(
            new_public_id(), fields.name, fields.min_value, fields.max_value, fields.unit,
            fields.type, user_public_id,
        )

        def run(conn: Connection) -> EventRecord:
            if _name_taken(conn, record.name):
                raise Conflict(EVENT_EXISTS)
            conn.execute(
                events.insert().values(
                    public_id=record.public_id, name=record.name, min_value=record.min_value,
                    max_value=record.max_value, unit=record.unit, type=record.type,
                    user_id=creator_id(user_public_id), created_on=utcnow(),
                )
            )
            return record

        return await self.write_retrying(run)

    async def update(self, public_id: str, fields: EventFields) -> bool:
        def run(conn: Connection) -> bool:
            current = conn.execute(
                sa.select(events.c.id, events.c.min_value, events.c.max_value).where(
                    events.c.public_id == public_id
                )
            ).first()
            if current is None:
                return False
            low = current.min_value if fields.min_value is None else fields.min_value
            high = current.max_value if fields.max_value is None else fields.max_value
            if low > high:
                raise InvalidRange()
            if fields.name is not None and _name_taken(conn, fields.name, public_id):
                raise Conflict(EVENT_EXISTS)
            values = {
                k: v for k, v in (
                    ("name", fields.name), ("min_value", fields.min_value),
                    ("max_value", fields.max_value), ("unit", fields.unit), ("type", fields.type),
                ) if v is not None
            }
            if values:
                conn.execute(events.update().where(events.c.id == current.id).values(**values))
            return True

        return await self.write_retrying(run)

    async def delete(self, public_id: str) -> bool:
        # The foreign key's ON DELETE CASCADE removes the datapoints in the same statement.
        def run(conn: Connection) -> bool:
            return conn.execute(events.delete().where(events.c.public_id == public_id)).rowcount > 0

        return await self.db.write(run)
