"""Commands pushed to controllers until acked or expired (contract §8).

Revision ID: 0005_commands
Revises: 0004_ingest_frames
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from webmacs.storage.migrations.coltypes import BigId, Double, Instant, PublicId

revision = "0005_commands"
down_revision = "0004_ingest_frames"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "commands",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("public_id", PublicId, nullable=False, unique=True),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False),
        sa.Column("value", Double, nullable=False),
        sa.Column("timestamp", Instant, nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("expires_at", Instant, nullable=False),
        sa.Index("ix_commands_target", "target", "event_id", "id"),
        sa.Index("ix_commands_expires", "expires_at"),
    )
