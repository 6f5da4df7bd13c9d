"""Commands that work straight on the database open it here, the way server start-up does.

The schema step is the server's own (:func:`webmacs.storage.backends.prepare` under the start-up
lock), so a command refuses a database the server would refuse, in the same words. Unlike
start-up, nothing is seeded: an administrative command must not create an admin as a side effect.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import trio

from webmacs.cli.common import CliError, first_leaf
from webmacs.settings import Settings
from webmacs.storage.backends import Repositories, StorageError, build_repositories, prepare
from webmacs.storage.database import Database, DatabaseUnavailable

T = TypeVar("T")

# A command does one thing at a time: two connections (one spare for the start-up lock's).
POOL_SIZE = 2


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[tuple[Database, Repositories]]:
    """The database and its repositories, with the schema checked or created; disposed at the end."""
    db = Database(settings.sqlalchemy_url, POOL_SIZE)
    try:
        repos = build_repositories(db, settings.storage_backend)
        async with db.startup_lock():
            await prepare(db, settings.storage_backend, settings.timescale)
        yield db, repos
    finally:
        db.dispose()


def run_on_database(settings: Settings, work: Callable[[Database, Repositories], Awaitable[T]]) -> T:
    """``trio.run`` ``work`` on the opened database; storage failures become one-line errors."""

    async def main() -> T:
        async with open_database(settings) as (db, repos):
            return await work(db, repos)

    # Unless logging is configured, a warning would reach stderr through logging's last
    # resort handler, as a second line beside the error itself.
    quiet = logging.getLogger("webmacs")
    if not any(isinstance(h, logging.NullHandler) for h in quiet.handlers):
        quiet.addHandler(logging.NullHandler())

    try:
        return trio.run(main)
    except* CliError as group:  # raised inside a nursery: arrives in a group
        raise first_leaf(group) from None
    except* StorageError as group:
        raise CliError(str(first_leaf(group))) from None
    except* DatabaseUnavailable as group:
        first = str(first_leaf(group)).splitlines()[0]
        raise CliError(f"cannot reach the database: {first}") from None
