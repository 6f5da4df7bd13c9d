"""Databases as webmacs made them before schema revisions (``create_schema``), for the tests
that their counters and rollups are backfilled by ``webmacs db upgrade``."""

from __future__ import annotations

import sqlalchemy as sa

from webmacs.storage import migrate
from webmacs.storage.tables import metadata


def made_before(url: str, revision: str) -> None:
    """Turn a database at head into one from the days when ``revision``'s tables were the newest:
    later tables and ``alembic_version`` dropped, the rows of the others kept, and ``users`` with
    the ``admin`` flag it had before roles (``0006_user_roles``)."""
    # Tables of revisions after the last pre-Alembic one (API tokens, …) never existed then.
    newer = frozenset(t.name for t in metadata.sorted_tables) - migrate.LEGACY_TABLES
    later = [newer, *reversed([added for rev, added in migrate.LEGACY_REVISIONS if rev > revision])]
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for tables in later:
                for table in sorted(tables):
                    conn.execute(sa.text(f"DROP TABLE {table}"))
            conn.execute(sa.text("DROP TABLE alembic_version"))
            conn.execute(sa.text("ALTER TABLE users ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE"))
            conn.execute(sa.text("UPDATE users SET admin = (role = 'admin')"))
            conn.execute(sa.text("ALTER TABLE users DROP COLUMN role"))
    finally:
        engine.dispose()


def upgrade(url: str) -> None:
    """What ``webmacs db upgrade`` does."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            migrate.upgrade(conn)
    finally:
        engine.dispose()
