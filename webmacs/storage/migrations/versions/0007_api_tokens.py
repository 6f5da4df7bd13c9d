"""API tokens for controllers and scripts (contract §8).

Revision ID: 0007_api_tokens
Revises: 0006_user_roles
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from webmacs.storage.migrations.coltypes import BigId, Instant, PublicId

revision = "0007_api_tokens"
down_revision = "0006_user_roles"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("public_id", PublicId, nullable=False, unique=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(10), nullable=False),
        sa.Column("scopes", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", Instant, nullable=False),
        sa.Column("expires_at", Instant, nullable=True),
        sa.Column("last_used_at", Instant, nullable=True),
        sa.Index("uq_api_tokens_secret_hash", "secret_hash", unique=True),
        sa.Index("ix_api_tokens_user", "user_id", "id"),
    )
