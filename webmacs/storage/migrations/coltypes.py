"""Column types as the revisions write them, frozen here so that changes to
:mod:`webmacs.storage.tables` cannot change what an old revision creates.

They render the same DDL as the live types: ``UTCDateTime`` is BIGINT microseconds on SQLite and
``timestamptz`` on PostgreSQL; ids are INTEGER on SQLite (the rowid, so autoincrement works) and
BIGINT elsewhere; public ids are UUIDs (CHAR(32) on SQLite).
"""

from __future__ import annotations

import sqlalchemy as sa

Instant = sa.DateTime(timezone=True).with_variant(sa.BigInteger(), "sqlite")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PublicId = sa.Uuid(as_uuid=False)
Double = sa.Float(53)
