"""Schema revisions with Alembic: where a database stands, and taking it to this code's head.

The revisions live in ``webmacs/storage/migrations/versions``; Alembic is configured here in code
(no ``alembic.ini`` at run time) and runs on a connection webmacs opened, inside the transaction
the caller commits. Everything here is a plain function of a sync ``Connection``: callers run it
in a worker thread (:mod:`webmacs.storage.backends`, ``webmacs db``).

Databases made before Alembic (by the former ``tables.create_schema``) carry no
``alembic_version``: the tables they have say which revision they correspond to
(:func:`legacy_revision`), which is stamped before the upgrade, so the revisions after it (and
their backfills) run exactly once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Collection
from pathlib import Path

import attrs
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from webmacs.storage.tables import metadata
from webmacs.storage.timescale import TimescaleOptions

SCRIPTS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)
# Alembic says which dialect it found on every connection it is handed, i.e. at every start: only
# its warnings go through (``webmacs db upgrade`` shows the revisions it runs itself).
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)

# The tables each revision added, for recognising databases made before Alembic. Frozen: later
# revisions are only ever applied to databases that already carry ``alembic_version``.
LEGACY_REVISIONS: tuple[tuple[str, frozenset[str]], ...] = (
    ("0001_base", frozenset({"users", "revoked_tokens", "events", "experiments", "datapoints",
                             "log_entries"})),
    ("0002_datapoint_counts", frozenset({"datapoint_counts"})),
    ("0003_datapoint_seconds", frozenset({"datapoint_seconds"})),
    ("0004_ingest_frames", frozenset({"ingest_frames"})),
    ("0005_commands", frozenset({"commands"})),
)
LEGACY_TABLES = frozenset().union(*(tables for _, tables in LEGACY_REVISIONS))


class SchemaError(Exception):
    """The database's schema cannot be used or upgraded as it is (one line, for operators)."""


@attrs.frozen
class Status:
    """Where a database stands: its Alembic revision (None: unversioned) and which of the tables
    webmacs made before Alembic it has (only looked at when unversioned)."""

    revision: str | None
    tables: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return self.revision is None and not self.tables

    def describe(self) -> str:
        if self.revision is not None:
            return self.revision
        return "empty" if not self.tables else "unversioned"


def legacy_revision(tables: Collection[str]) -> str:
    """The revision a database made before Alembic corresponds to, from its tables (the former
    ``create_schema`` always made every table of its day, so they come in whole revisions)."""
    present = set(tables) & LEGACY_TABLES
    found = None
    for revision, added in LEGACY_REVISIONS:
        if not added <= present:
            break
        found = revision
        present -= added
    if found is None or present:
        latest = max(i for i, (_, added) in enumerate(LEGACY_REVISIONS) if added & set(tables))
        needed = set().union(*(added for _, added in LEGACY_REVISIONS[:latest + 1]))
        missing = sorted(needed - set(tables))
        raise SchemaError(
            "the database has some webmacs tables but no schema revision, and is not a database "
            f"any webmacs made (missing: {', '.join(missing)}): restore it from a backup"
        )
    return found


def refusal(status: Status, head: str, known: Collection[str]) -> str | None:
    """Why this code cannot run on the database as it is, in one line; None if it can (at head,
    or empty: the caller creates the schema)."""
    if status.revision == head or status.empty:
        return None
    if status.revision is None:
        legacy_revision(status.tables)  # a database no webmacs made is refused as such
        return (f"the database schema is unversioned (made before schema revisions), this webmacs "
                f"needs {head}: run `webmacs db upgrade`")
    if status.revision not in known:
        return (f"the database schema is at revision {status.revision}, which this webmacs does not "
                f"know (a newer webmacs upgraded it): run that version or a newer one")
    return (f"the database schema is at revision {status.revision}, this webmacs needs {head}: "
            "run `webmacs db upgrade`")


@functools.cache
def scripts() -> ScriptDirectory:
    """The revisions, read once per process."""
    return ScriptDirectory(str(SCRIPTS))


def head() -> str:
    found = scripts().get_current_head()
    assert found is not None, "no revisions"
    return found


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    return [s.revision for s in reversed(list(scripts().walk_revisions()))]


def known_revisions() -> frozenset[str]:
    return frozenset(revisions())


def alembic_config(connection: sa.Connection | None = None, backend: str = "",
                   timescale: TimescaleOptions | None = None) -> Config:
    """Alembic's configuration, built in code: the revisions find the backend (``timescale``
    makes datapoints a hypertable) and its options in ``config.attributes``."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS).replace("%", "%%"))
    config.attributes.update(connection=connection, backend=backend,
                             timescale=timescale or TimescaleOptions())
    return config


def status(conn: sa.Connection) -> Status:
    revision = MigrationContext.configure(conn).get_current_revision()
    if revision is not None:
        return Status(revision)
    return Status(None, frozenset(sa.inspect(conn).get_table_names()) & LEGACY_TABLES)


def create(conn: sa.Connection) -> None:
    """An empty database straight at head: the tables of ``tables.metadata`` and a stamp, which is
    what replaying every revision gives (tests/test_migrations.py compares the two) for a
    fraction of the cost (a fresh SQLite file per test)."""
    metadata.create_all(conn)
    MigrationContext.configure(conn).stamp(scripts(), "head")


def upgrade(conn: sa.Connection, target: str = "head", backend: str = "",
            timescale: TimescaleOptions | None = None) -> tuple[Status, str]:
    """Take the database to ``target``, in the caller's transaction.

    An empty database is created at head if ``target`` is "head" (a revision id, even head's,
    replays the revisions; so does TimescaleDB, for the hypertable); a pre-Alembic one is stamped
    with the revision its tables correspond to; then the revisions after that run. Returns where
    the database stood and the revision it is at now."""
    before = status(conn)
    if before.revision is not None and before.revision not in known_revisions():
        raise SchemaError(refusal(before, head(), known_revisions()) or before.revision)
    order = revisions()
    if before.revision in order and target in order and order.index(target) < order.index(
            before.revision):
        raise SchemaError(f"the database schema is at {before.revision}, past {target}: webmacs "
                          "does not downgrade (restore the backup taken before upgrading)")
    if before.empty and target == "head" and backend != "timescale":
        create(conn)
        log.info("created the database schema at %s", head())
        return before, head()
    if before.revision is None and before.tables:
        MigrationContext.configure(conn).stamp(scripts(), legacy_revision(before.tables))
    try:
        command.upgrade(alembic_config(conn, backend, timescale), target)
    except CommandError as exc:
        raise SchemaError(f"cannot upgrade to {target!r}: {str(exc).splitlines()[0]}") from None
    after = status(conn).revision
    assert after is not None
    return before, after
