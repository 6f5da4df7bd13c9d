"""Errors of the raw psycopg cursor (PostgreSQL ingest) count as transient like SQLAlchemy's.

Two writers locking two rows in opposite orders deadlock; PostgreSQL aborts one (40P01). On the
raw cursor that error bypasses SQLAlchemy, and before, it crashed the recorder and lost the batch
instead of being retried (seen under 4 concurrent controllers: ``datapoint_counts`` upserts).
"""

from __future__ import annotations

import threading
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from webmacs.storage.database import Database, DatabaseUnavailable


def test_a_deadlock_on_the_raw_cursor_is_database_unavailable(pg_database_url: str) -> None:
    db = Database(pg_database_url.replace("postgresql://", "postgresql+psycopg://", 1), 2)
    try:
        db.write_sync(lambda c: c.execute(sa.text(
            "DROP TABLE IF EXISTS deadlock_probe; CREATE TABLE deadlock_probe (k int PRIMARY KEY);"
            "INSERT INTO deadlock_probe VALUES (1), (2)")))
        both_hold_one = threading.Barrier(2, timeout=30)
        outcomes: list[str] = []

        def writer(first: int, second: int) -> None:
            def lock_two(conn: Connection) -> None:
                raw: Any = conn.connection.driver_connection
                with raw.cursor() as cur:
                    cur.execute("SELECT k FROM deadlock_probe WHERE k = %s FOR UPDATE", (first,))
                    both_hold_one.wait()
                    cur.execute("SELECT k FROM deadlock_probe WHERE k = %s FOR UPDATE", (second,))

            try:
                db.write_sync(lock_two)
                outcomes.append("committed")
            except DatabaseUnavailable:
                outcomes.append("unavailable")
            except Exception as exc:  # what happened before the fix: the driver's own error
                outcomes.append(type(exc).__name__)

        threads = [threading.Thread(target=writer, args=(1, 2)),
                   threading.Thread(target=writer, args=(2, 1))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(outcomes) == ["committed", "unavailable"]
    finally:
        db.dispose()

