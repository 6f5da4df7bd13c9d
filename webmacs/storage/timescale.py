"""TimescaleDB: ``datapoints`` as a hypertable, with optional compression and retention.

Everything else is the PostgreSQL backend. A hypertable's unique indexes must contain its time
column, so here the datapoints key is ``(id, timestamp)`` and ``public_id`` has a plain index
(ids are random UUIDs, unique by construction); series queries use ``time_bucket``. The first
schema revision (``migrations/versions/0001_base.py``) makes the hypertable; the policies below
follow the settings and are applied at every start.
"""

from __future__ import annotations

import re

import attrs

INTERVAL = re.compile(r"^\d+\s*(second|minute|hour|day|week|month|year)s?$")


def valid_interval(text: str) -> bool:
    return bool(INTERVAL.match(text.strip().lower()))


@attrs.frozen
class TimescaleOptions:
    chunk_interval: str = "1 day"
    compress_after: str | None = None
    retention: str | None = None


CHECK_EXTENSION = "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"


def policy_statements(opts: TimescaleOptions) -> list[str]:
    """Compression and retention as the settings say; every statement is idempotent (a policy
    added earlier stays as it was: remove it by hand to change its interval)."""
    statements = []
    if opts.compress_after:
        statements += [
            "ALTER TABLE datapoints SET (timescaledb.compress, "
            "timescaledb.compress_segmentby = 'event_id', "
            "timescaledb.compress_orderby = 'timestamp DESC, id DESC')",
            f"SELECT add_compression_policy('datapoints', INTERVAL '{opts.compress_after}', "
            "if_not_exists => TRUE)",
        ]
    if opts.retention:
        statements.append(
            f"SELECT add_retention_policy('datapoints', INTERVAL '{opts.retention}', "
            "if_not_exists => TRUE)"
        )
    return statements
