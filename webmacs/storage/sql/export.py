"""Streaming CSV export of one experiment, in a worker thread, in constant memory.

PostgreSQL: ``COPY (SELECT …) TO STDOUT (FORMAT CSV)`` does the formatting in the server (the
SQL reproduces Python's shortest round-trip float text), so per row Python only swaps the
line terminator for CRLF. SQLite: one ordered read in a single snapshot, formatted in chunks.
Either way the rows of one statement: a consistent snapshot, no row twice, and bounded chunks
handed to Trio through ``emit`` (which blocks while the client is slow: backpressure).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from webmacs.storage.database import Database
from webmacs.storage.tables import datapoints, events, experiments
from webmacs.validation import format_timestamp

Emit = Callable[[bytes], None]
CHUNK_BYTES = 256 * 1024

# Python's repr(float) in SQL: PostgreSQL prints the same shortest digits, but writes integral
# values without ".0" and switches to exponent form one decade earlier (1e15 instead of 1e16).
_FLOAT_TEXT = """
CASE
  WHEN abs(d.value) >= 1e15 AND abs(d.value) < 1e16 THEN
    (CASE WHEN d.value < 0 THEN '-' ELSE '' END) ||
    (CASE WHEN length(replace(split_part(abs(d.value)::text, 'e', 1), '.', '')) <= 16
      THEN rpad(replace(split_part(abs(d.value)::text, 'e', 1), '.', ''), 16, '0') || '.0'
      ELSE left(replace(split_part(abs(d.value)::text, 'e', 1), '.', ''), 16) || '.' ||
           substr(replace(split_part(abs(d.value)::text, 'e', 1), '.', ''), 17)
    END)
  WHEN d.value::text ~ '[.en]' THEN d.value::text
  ELSE d.value::text || '.0'
END
"""

PG_EXPORT = f"""
COPY (
  SELECT to_char(d.timestamp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
         e.name, e.public_id, {_FLOAT_TEXT}, e.unit, d.public_id
  FROM datapoints d JOIN events e ON e.id = d.event_id
  WHERE d.experiment_id = (SELECT id FROM experiments WHERE public_id = {{public_id}})
  ORDER BY d.timestamp, d.id
) TO STDOUT (FORMAT CSV)
"""

def export_postgresql(db: Database, public_id: str, emit: Emit) -> None:
    from psycopg import sql

    statement = sql.SQL(PG_EXPORT).format(public_id=sql.Literal(public_id))
    raw: Any = db.engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        parts: list[bytes] = []
        size = 0
        with dbapi.cursor() as cur, cur.copy(statement) as copy:
            # One CopyData message is one row: its last byte is the record's line feed.
            for row in copy:
                line = bytes(row)
                parts.append(line[:-1])
                size += len(line) + 1
                if size >= CHUNK_BYTES:
                    parts.append(b"")
                    emit(b"\r\n".join(parts))
                    parts, size = [], 0
        if parts:
            parts.append(b"")
            emit(b"\r\n".join(parts))
        dbapi.rollback()
    finally:
        raw.close()


def export_sqlite(db: Database, public_id: str, emit: Emit) -> None:
    exp_id = sa.select(experiments.c.id).where(experiments.c.public_id == public_id).scalar_subquery()
    query = (
        sa.select(datapoints.c.timestamp, events.c.name, events.c.public_id, datapoints.c.value,
                  events.c.unit, datapoints.c.public_id)
        .select_from(datapoints.join(events, events.c.id == datapoints.c.event_id))
        .where(datapoints.c.experiment_id == exp_id)
        .order_by(datapoints.c.timestamp, datapoints.c.id)
    )
    with db.engine.connect() as conn, conn.begin():
        result = conn.execution_options(yield_per=2000).execute(query)
        for rows in result.partitions():
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\r\n")
            writer.writerows(
                (format_timestamp(ts), name, ev, repr(float(value)), unit, dp)
                for ts, name, ev, value, unit, dp in rows
            )
            emit(buf.getvalue().encode("utf-8"))
