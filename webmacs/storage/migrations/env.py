"""Alembic's environment for webmacs.

At run time webmacs hands over its own connection, already inside the transaction it will commit
(``config.attributes["connection"]``, see :mod:`webmacs.storage.migrate`): a whole upgrade is one
transaction on both backends, and SQLite gets the engine's pragmas. Run from the ``alembic``
command instead (a developer, ``-x url=sqlite:///scratch.db`` for ``--autogenerate``), it opens
the database itself.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from webmacs.storage.tables import metadata

config = context.config


def run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # `--sql`: the statements of the upgrade, as text
    dialect = config.attributes.get("dialect") or context.get_x_argument(as_dictionary=True).get(
        "dialect", "postgresql")
    context.configure(dialect_name=dialect, target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (given := config.attributes.get("connection")) is not None:
    run(given)
else:
    url = context.get_x_argument(as_dictionary=True).get("url") or "sqlite:///webmacs.db"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            run(conn)
    finally:
        engine.dispose()
