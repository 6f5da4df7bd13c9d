"""Helpers shared by the SQL repositories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from webmacs.storage.database import Database
from webmacs.storage.records import Page
from webmacs.storage.tables import users

T = TypeVar("T")


def creator_id(public_id: str | None) -> Any:
    """A scalar subquery resolving a user public id to its row id inside the same statement."""
    if public_id is None:
        return None
    return sa.select(users.c.id).where(users.c.public_id == public_id).scalar_subquery()


def fetch_page(
    conn: Connection,
    query: sa.Select[Any],
    count: sa.Select[Any],
    offset: int,
    limit: int,
    convert: Callable[[Row[Any]], T],
) -> Page[T]:
    total = int(conn.execute(count).scalar_one())
    rows = conn.execute(query.offset(offset).limit(limit)).all() if offset < total else []
    return Page([convert(r) for r in rows], total)


class SqlRepository:
    """Base: holds the database; subclasses define sync functions and hand them to it."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def dialect(self) -> str:
        return self.db.dialect

    async def write_retrying(self, fn: Callable[[Connection], T]) -> T:
        """Run a write; if a unique constraint fired in a race, run it once more so the explicit
        checks inside ``fn`` see the winner's row and raise the precise :class:`Conflict`."""
        try:
            return await self.db.write(fn)
        except sa.exc.IntegrityError:
            return await self.db.write(fn)
