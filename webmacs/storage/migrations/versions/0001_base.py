"""The first schema: users, revoked tokens, events, experiments, datapoints, log entries.

Revision ID: 0001_base
Revises:
Create Date: 2026-11-27 (the foundation; recorded as a revision on 2026-12-03)

On STORAGE_BACKEND=timescale, ``datapoints`` is a hypertable: its key is ``(id, timestamp)``
(a hypertable's unique indexes must contain its time column), ``public_id`` has a plain index
(random UUIDs), and TimescaleDB indexes the time column itself. The chunk interval comes from
TIMESCALE_CHUNK_INTERVAL when the table is made; compression and retention policies are applied
at every start instead (webmacs.storage.backends.prepare), as they follow the settings.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from webmacs.storage.migrations.coltypes import BigId, Double, Instant, PublicId

revision = "0001_base"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("public_id", PublicId, nullable=False, unique=True),
        sa.Column("email", sa.String(255), nullable=False, unique=True),
        sa.Column("username", sa.String(50), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(100), nullable=False),
        sa.Column("admin", sa.Boolean, nullable=False),
        sa.Column("registered_on", Instant, nullable=False),
        sa.Column("tokens_valid_after", Instant, nullable=True),
    )
    op.create_table(
        "events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("public_id", PublicId, nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("min_value", Double, nullable=False),
        sa.Column("max_value", Double, nullable=False),
        sa.Column("unit", sa.String(255), nullable=False),
        sa.Column("type", sa.String(20), nullable=False),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_on", Instant, nullable=False),
        sa.Index("ix_events_created", "created_on", "id"),
    )
    op.create_table(
        "experiments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("public_id", PublicId, nullable=False, unique=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("started_on", Instant, nullable=False),
        sa.Column("stopped_on", Instant, nullable=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Index("ix_experiments_started", "started_on", "id"),
        sa.Index("uq_experiments_one_running", sa.text("(stopped_on IS NULL)"), unique=True,
                 sqlite_where=sa.text("stopped_on IS NULL"),
                 postgresql_where=sa.text("stopped_on IS NULL")),
    )
    if _attributes().get("backend") == "timescale":
        _timescale_datapoints()
    else:
        op.create_table(
            "datapoints",
            sa.Column("id", BigId, primary_key=True, autoincrement=True),
            sa.Column("public_id", PublicId, nullable=False, unique=True),
            sa.Column("value", Double, nullable=False),
            sa.Column("timestamp", Instant, nullable=False),
            sa.Column("event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"),
                      nullable=False),
            sa.Column("experiment_id", BigId, sa.ForeignKey("experiments.id", ondelete="CASCADE"),
                      nullable=True),
            sa.Index("ix_datapoints_event_ts", "event_id", "timestamp", "id"),
            sa.Index("ix_datapoints_experiment_ts", "experiment_id", "timestamp", "id"),
            sa.Index("ix_datapoints_ts", "timestamp", "id"),
        )
    op.create_table(
        "log_entries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("public_id", PublicId, nullable=False, unique=True),
        sa.Column("content", sa.String(500), nullable=False),
        sa.Column("logging_type", sa.String(10), nullable=False),
        sa.Column("status_type", sa.String(10), nullable=False),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_on", Instant, nullable=False),
        sa.Index("ix_log_entries_created", "created_on", "id"),
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("expires_at", Instant, nullable=False),
        sa.Index("ix_revoked_tokens_expires_at", "expires_at"),
    )


def _attributes() -> dict[str, Any]:
    """What webmacs passed in (webmacs.storage.migrate.alembic_config): the backend and its options."""
    config = op.get_context().config
    return config.attributes if config is not None else {}


def _timescale_datapoints() -> None:
    interval = _attributes()["timescale"].chunk_interval
    op.execute("""CREATE TABLE datapoints (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY,
    public_id UUID NOT NULL,
    value DOUBLE PRECISION NOT NULL,
    timestamp TIMESTAMPTZ NOT NULL,
    event_id BIGINT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    experiment_id BIGINT REFERENCES experiments (id) ON DELETE CASCADE,
    PRIMARY KEY (id, timestamp)
)""")
    op.execute("CREATE INDEX ix_datapoints_public_id ON datapoints (public_id)")
    op.execute("CREATE INDEX ix_datapoints_event_ts ON datapoints (event_id, timestamp, id)")
    op.execute("CREATE INDEX ix_datapoints_experiment_ts ON datapoints (experiment_id, timestamp, id)")
    op.execute("SELECT create_hypertable('datapoints', 'timestamp', "
               f"chunk_time_interval => INTERVAL '{interval}')")
