"""Row counts per (event, experiment), backfilled from the datapoints already stored.

Revision ID: 0002_datapoint_counts
Revises: 0001_base
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from webmacs.storage.migrations.coltypes import BigId

revision = "0002_datapoint_counts"
down_revision = "0001_base"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datapoint_counts",
        sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("experiment_key", BigId, primary_key=True, autoincrement=False),
        sa.Column("n", sa.BigInteger, nullable=False),
    )
    op.execute(
        "INSERT INTO datapoint_counts (event_id, experiment_key, n) "
        "SELECT event_id, COALESCE(experiment_id, 0), count(*) FROM datapoints GROUP BY 1, 2"
    )
