"""Choosing and opening a storage backend: SQLite, PostgreSQL or TimescaleDB."""

from __future__ import annotations

import attrs
import sqlalchemy as sa
import trio

from webmacs.storage.auth_cache import CachedTokenRepository, CachedUserRepository
from webmacs.storage.database import Database
from webmacs.storage.protocols import (
    CommandRepository,
    DatapointRepository,
    EventRepository,
    ExperimentRepository,
    IngestFrameRepository,
    LogRepository,
    TokenRepository,
    UserRepository,
)
from webmacs.storage.sql.commands import SqlCommandRepository
from webmacs.storage.sql.datapoints import SqlDatapointRepository
from webmacs.storage.sql.events import SqlEventRepository
from webmacs.storage.sql.experiments import SqlExperimentRepository
from webmacs.storage.sql.ingest_frames import SqlIngestFrameRepository
from webmacs.storage.sql.logs import SqlLogRepository
from webmacs.storage.tables import create_schema, datapoint_counts, datapoint_seconds, metadata
from webmacs.storage.timescale import CHECK_EXTENSION, TimescaleOptions, schema_statements


class StorageError(Exception):
    """The configured backend cannot be used (e.g. the TimescaleDB extension is missing)."""


@attrs.frozen
class Repositories:
    """What routes and actors may ask of storage: typed by the protocols, not the SQL classes."""

    users: UserRepository
    tokens: TokenRepository
    events: EventRepository
    experiments: ExperimentRepository
    datapoints: DatapointRepository
    logs: LogRepository
    frames: IngestFrameRepository
    commands: CommandRepository


def build_repositories(db: Database, backend: str = "") -> Repositories:
    datapoints = SqlDatapointRepository(db)
    datapoints.timescale = backend == "timescale"
    return Repositories(
        users=CachedUserRepository(db),
        tokens=CachedTokenRepository(db),
        events=SqlEventRepository(db),
        experiments=SqlExperimentRepository(db),
        datapoints=datapoints,
        logs=SqlLogRepository(db),
        frames=SqlIngestFrameRepository(db),
        commands=SqlCommandRepository(db),
    )


async def prepare(db: Database, backend: str, timescale: TimescaleOptions | None = None) -> None:
    """Create missing tables; for ``timescale``, refuse to start without the extension, then
    make ``datapoints`` a hypertable with the configured policies."""
    if backend != "timescale":
        await trio.to_thread.run_sync(db.create_schema_sync, limiter=db.limiter)
        return

    def has_extension(conn: sa.Connection) -> bool:
        return conn.execute(sa.text(CHECK_EXTENSION)).first() is not None

    if not await db.read(has_extension):
        raise StorageError(
            "STORAGE_BACKEND=timescale but the timescaledb extension is not installed "
            "in this database (CREATE EXTENSION timescaledb;)."
        )
    later = ("datapoints", "datapoint_counts", "datapoint_seconds")
    before = [t for t in metadata.sorted_tables if t.name not in later]

    def create(conn: sa.Connection) -> None:
        metadata.create_all(conn, tables=before)
        for statement in schema_statements(timescale or TimescaleOptions()):
            conn.execute(sa.text(statement))
        create_schema(conn, tables=[datapoint_counts, datapoint_seconds])

    await db.write(create)
