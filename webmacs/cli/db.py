"""``webmacs db upgrade|current|check``: the database schema against this webmacs's revision."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import click
import sqlalchemy as sa
import trio

from webmacs.cli.common import CliError, settings_from
from webmacs.settings import Settings
from webmacs.storage import migrate
from webmacs.storage.backends import StorageError, require_timescale
from webmacs.storage.database import Database, DatabaseUnavailable

T = TypeVar("T")

database_url_option = click.option(
    "--database-url", help="sqlite:///file or postgresql://… (env DATABASE_URL, .env, default "
                           "sqlite:///webmacs.db).")


@click.group()
def db() -> None:
    """The database schema: upgrade it to this webmacs's revision, show it, check it."""


@db.command()
@database_url_option
@click.option("--to", "target", default="head", show_default=True, metavar="REVISION",
              help="Stop at this revision (an id such as 0003_datapoint_seconds).")
def upgrade(database_url: str | None, target: str) -> None:
    """Upgrade the schema (take a backup first). Databases made before schema revisions are
    recognised by their tables and upgraded from there; several processes take turns."""
    settings = settings_from({"DATABASE_URL": database_url})

    async def run(db: Database) -> tuple[migrate.Status, str]:
        async with db.startup_lock():
            if settings.storage_backend == "timescale":
                await require_timescale(db)
            return await db.write(
                lambda conn: migrate.upgrade(conn, target, settings.storage_backend,
                                             settings.timescale))

    with _show_revisions_run():
        before, after = _run(settings, run, refused="upgrade failed, nothing changed")
    if before.revision == after:
        click.echo(f"database schema already at {after}")
    else:
        click.echo(f"database schema upgraded from {before.describe()} to {after}")


@db.command()
@database_url_option
def current(database_url: str | None) -> None:
    """Print the schema's revision ("(head)" when it is this webmacs's), or empty, or
    unversioned (made before schema revisions)."""
    now = _status(settings_from({"DATABASE_URL": database_url}))
    click.echo(now.describe() + (" (head)" if now.revision == migrate.head() else ""))


@db.command()
@database_url_option
def check(database_url: str | None) -> None:
    """Exit 0 if the schema is at this webmacs's revision, else 1 with the reason in one line
    (for deploy scripts: run `webmacs db upgrade` when it fails)."""
    now = _status(settings_from({"DATABASE_URL": database_url}))
    head = migrate.head()
    if now.empty:
        raise CliError(f"the database is empty: `webmacs db upgrade` creates the schema at {head}")
    try:
        why = migrate.refusal(now, head, migrate.known_revisions())
    except migrate.SchemaError as exc:
        why = str(exc)
    if why is not None:
        raise CliError(why)
    click.echo(f"database schema at {head} (head)")


def _status(settings: Settings) -> migrate.Status:
    """Where the database stands, without creating a SQLite file that is not there."""
    url = sa.engine.make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not Path(url.database).exists():
        return migrate.Status(None)

    async def run(db: Database) -> migrate.Status:
        return await db.read(migrate.status)

    return _run(settings, run)


def _run(settings: Settings, fn: Callable[[Database], Awaitable[T]],
         refused: str = "the database refused") -> T:
    """Run ``fn`` on the database in Trio; what goes wrong becomes one line: ``refused`` and the
    database's message when a statement failed, "cannot reach the database" when none ran."""

    # The failure is reported below in one line, not also as the storage layer's warning.
    logging.getLogger("webmacs.storage.database").setLevel(logging.ERROR)

    async def main() -> T:
        db = Database(settings.sqlalchemy_url, pool_size=2)
        try:
            return await fn(db)
        finally:
            db.dispose()

    try:
        return trio.run(main)
    except (migrate.SchemaError, StorageError) as exc:
        raise CliError(str(exc)) from None
    except (DatabaseUnavailable, sa.exc.DBAPIError) as exc:
        # SQLite reports a failed statement as an OperationalError, i.e. as unavailable.
        cause = exc if isinstance(exc, sa.exc.DBAPIError) else exc.__cause__
        if isinstance(cause, sa.exc.DBAPIError) and cause.statement is not None:
            raise CliError(f"{refused}: {str(cause.orig).splitlines()[0]}") from None
        raise CliError(f"cannot reach the database: {str(exc).splitlines()[0]}") from None


class _RevisionsRun(logging.Handler):
    """Prints each revision as it runs ("Running upgrade 0002_… -> 0003_…"): a backfill over
    many rows can take a while."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("Running upgrade"):
            click.echo(f"  {record.getMessage()}")


@contextmanager
def _show_revisions_run() -> Iterator[None]:
    logger = logging.getLogger("alembic.runtime.migration")
    handler, level = _RevisionsRun(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
