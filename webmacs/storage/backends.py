"""Choosing and opening a storage backend: SQLite, PostgreSQL or TimescaleDB."""

from __future__ import annotations

import attrs
import sqlalchemy as sa
import trio

from webmacs.storage.database import Database
from webmacs.storage.sql.datapoints import SqlDatapointRepository
from webmacs.storage.sql.events import SqlEventRepository
from webmacs.storage.sql.experiments import SqlExperimentRepository
from webmacs.storage.sql.logs import SqlLogRepository
from webmacs.storage.sql.users import SqlTokenRepository, SqlUserRepository


class StorageError(Exception):
    """The configured backend cannot be used (e.g. the TimescaleDB extension is missing)."""


@attrs.frozen
class Repositories:
    users: SqlUserRepository
    tokens: SqlTokenRepository
    events: SqlEventRepository
    experiments: SqlExperimentRepository
    datapoints: SqlDatapointRepository
    logs: SqlLogRepository


def build_repositories(db: Database) -> Repositories:
    return Repositories(
        users=SqlUserRepository(db),
        tokens=SqlTokenRepository(db),
        events=SqlEventRepository(db),
        experiments=SqlExperimentRepository(db),
        datapoints=SqlDatapointRepository(db),
        logs=SqlLogRepository(db),
    )


async def prepare(db: Database, backend: str) -> None:
    """Create missing tables; for ``timescale``, refuse to start without the extension."""
    if backend == "timescale":
        def has_extension(conn: sa.Connection) -> bool:
            query = sa.text("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
            return conn.execute(query).first() is not None

        if not await db.read(has_extension):
            raise StorageError(
                "STORAGE_BACKEND=timescale but the timescaledb extension is not installed "
                "in this database (CREATE EXTENSION timescaledb;)."
            )
    await trio.to_thread.run_sync(db.create_schema_sync, limiter=db.limiter)
