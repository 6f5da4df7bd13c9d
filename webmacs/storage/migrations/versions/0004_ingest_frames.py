"""Telemetry frame ids with their acks, for idempotent resends (contract §8).

Revision ID: 0004_ingest_frames
Revises: 0003_datapoint_seconds
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from webmacs.storage.migrations.coltypes import Instant

revision = "0004_ingest_frames"
down_revision = "0003_datapoint_seconds"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_frames",
        sa.Column("controller_id", sa.String(64), primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Text, nullable=False),
        sa.Column("committed_at", Instant, nullable=False),
        sa.Index("ix_ingest_frames_committed", "committed_at"),
    )
