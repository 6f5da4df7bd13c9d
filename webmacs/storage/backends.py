"""Choosing and opening a storage backend: SQLite, PostgreSQL or TimescaleDB."""

from __future__ import annotations

import attrs
import sqlalchemy as sa

from webmacs.storage import migrate
from webmacs.storage.auth_cache import CachedTokenRepository, CachedUserRepository
from webmacs.storage.database import Database
from webmacs.storage.protocols import (
    ApiTokenRepository,
    CommandRepository,
    DatapointRepository,
    EventRepository,
    ExperimentRepository,
    IngestFrameRepository,
    LogRepository,
    TokenRepository,
    UserRepository,
)
from webmacs.storage.sql.api_tokens import CachedApiTokenRepository
from webmacs.storage.sql.commands import SqlCommandRepository
from webmacs.storage.sql.datapoints import SqlDatapointRepository
from webmacs.storage.sql.events import SqlEventRepository
from webmacs.storage.sql.experiments import SqlExperimentRepository
from webmacs.storage.sql.ingest_frames import SqlIngestFrameRepository
from webmacs.storage.sql.logs import SqlLogRepository
from webmacs.storage.timescale import CHECK_EXTENSION, TimescaleOptions, policy_statements


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
    api_tokens: ApiTokenRepository


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
        api_tokens=CachedApiTokenRepository(db),
    )


async def prepare(db: Database, backend: str, timescale: TimescaleOptions | None = None) -> None:
    """Make sure the schema is this code's: an empty database is created at head; one behind
    (or ahead of) head, or made before schema revisions, is refused in one line naming
    ``webmacs db upgrade``, which operators run after a backup. For ``timescale``, refuse to
    start without the extension, and apply the compression and retention policies of the
    settings. Called under :meth:`Database.startup_lock`."""
    if backend == "timescale":
        await require_timescale(db)

    def check_or_create(conn: sa.Connection) -> None:
        now = migrate.status(conn)
        try:
            why = migrate.refusal(now, migrate.head(), migrate.known_revisions())
        except migrate.SchemaError as exc:
            why = str(exc)
        if why is not None:
            raise StorageError(why)
        if now.empty:
            migrate.upgrade(conn, "head", backend, timescale)
        if backend == "timescale":
            for statement in policy_statements(timescale or TimescaleOptions()):
                conn.execute(sa.text(statement))

    await db.write(check_or_create)


async def require_timescale(db: Database) -> None:
    """Refuse STORAGE_BACKEND=timescale on a database without the extension."""

    def has_extension(conn: sa.Connection) -> bool:
        return conn.execute(sa.text(CHECK_EXTENSION)).first() is not None

    if not await db.read(has_extension):
        raise StorageError(
            "STORAGE_BACKEND=timescale but the timescaledb extension is not installed "
            "in this database (CREATE EXTENSION timescaledb;)."
        )
