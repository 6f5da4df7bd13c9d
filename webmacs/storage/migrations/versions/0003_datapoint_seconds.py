"""Per-(event, whole second) rollups, built from the datapoints already stored.

Revision ID: 0003_datapoint_seconds
Revises: 0002_datapoint_counts
Create Date: 2026-11-27

The backfill is the full rebuild of ``webmacs.storage.rollups.rebuild_seconds``, written out here
so later changes to that module cannot change this revision. ``last_value`` is the value of the
second's latest reading, ties going to the row stored last (the highest id).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from webmacs.storage.migrations.coltypes import BigId, Double, Instant

revision = "0003_datapoint_seconds"
down_revision = "0002_datapoint_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datapoint_seconds",
        sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("second", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.Column("total", Double, nullable=False),
        sa.Column("lo", Double, nullable=False),
        sa.Column("hi", Double, nullable=False),
        sa.Column("last_value", Double, nullable=True),
        sa.Column("last_ts", Instant, nullable=False),
    )
    second = ("(d.timestamp / 1000000)" if op.get_context().dialect.name == "sqlite"  # micros
              else "floor(extract(epoch FROM d.timestamp))::bigint")
    op.execute(f"""
INSERT INTO datapoint_seconds (event_id, second, n, total, lo, hi, last_value, last_ts)
SELECT d.event_id, {second}, count(*), sum(d.value), min(d.value), max(d.value), NULL,
       max(d.timestamp)
FROM datapoints d GROUP BY d.event_id, {second}""")
    op.execute("""
UPDATE datapoint_seconds SET last_value = (
  SELECT d.value FROM datapoints d
  WHERE d.event_id = datapoint_seconds.event_id AND d.timestamp = datapoint_seconds.last_ts
  ORDER BY d.id DESC LIMIT 1)""")
