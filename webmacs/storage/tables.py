"""The schema, in SQLAlchemy Core, identical on SQLite and PostgreSQL.

Internal integer ids are the keys and the tie-breakers of every ordering; the public UUIDs are
what clients see. Foreign keys carry the cascade rules so a delete is one set-based statement.

Every change here ships a schema revision (``migrations/versions``, docs/operations.md "Schema
migrations"); tests/test_migrations.py fails until the revisions give exactly this schema.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``. SQLite has no time type, so it stores integer microseconds
    since the epoch: exact, compact, and ordered the same way as the instants themselves.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.BigInteger())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        if dialect.name == "sqlite":
            return to_micros(value)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return from_micros(int(value))
        assert isinstance(value, datetime)
        return value.astimezone(UTC)


def to_micros(value: datetime) -> int:
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
PublicId = sa.Uuid(as_uuid=False)

metadata = sa.MetaData()

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("public_id", PublicId, nullable=False, unique=True),
    sa.Column("email", sa.String(255), nullable=False, unique=True),
    sa.Column("username", sa.String(50), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(100), nullable=False),
    sa.Column("registered_on", UTCDateTime, nullable=False),
    # Tokens issued before this instant are revoked (password change, §3.3).
    sa.Column("tokens_valid_after", UTCDateTime, nullable=True),
    # viewer, operator or admin (webmacs.roles); last, where revision 0006 added it. The default
    # is what a v2 client's ``admin: false`` means (webmacs always writes the role itself).
    sa.Column("role", sa.String(10), nullable=False, server_default=sa.text("'operator'")),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("public_id", PublicId, nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("min_value", sa.Float(53), nullable=False),
    sa.Column("max_value", sa.Float(53), nullable=False),
    sa.Column("unit", sa.String(255), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("created_on", UTCDateTime, nullable=False),
    sa.Index("ix_events_created", "created_on", "id"),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("public_id", PublicId, nullable=False, unique=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("started_on", UTCDateTime, nullable=False),
    sa.Column("stopped_on", UTCDateTime, nullable=True),
    sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Index("ix_experiments_started", "started_on", "id"),
    # At most one running experiment, enforced by the database under any concurrency.
    sa.Index(
        "uq_experiments_one_running",
        sa.text("(stopped_on IS NULL)"),
        unique=True,
        sqlite_where=sa.text("stopped_on IS NULL"),
        postgresql_where=sa.text("stopped_on IS NULL"),
    ),
)

datapoints = sa.Table(
    "datapoints",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("public_id", PublicId, nullable=False, unique=True),
    sa.Column("value", sa.Float(53), nullable=False),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Column(
        "event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column(
        "experiment_id", BigId, sa.ForeignKey("experiments.id", ondelete="CASCADE"), nullable=True
    ),
    sa.Index("ix_datapoints_event_ts", "event_id", "timestamp", "id"),
    sa.Index("ix_datapoints_experiment_ts", "experiment_id", "timestamp", "id"),
    sa.Index("ix_datapoints_ts", "timestamp", "id"),
)

# Row counts per (event, experiment), kept in the same transactions as the rows themselves, so a
# page's ``total`` is a sum over a few counters instead of a count over millions of rows.
# ``experiment_key`` is the experiment's row id, 0 for readings outside any experiment.
datapoint_counts = sa.Table(
    "datapoint_counts",
    metadata,
    sa.Column(
        "event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("experiment_key", BigId, primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False),
)

# Per-(event, whole second) rollups kept in the ingest transaction: chart series over wide windows
# aggregate these (at most window-seconds rows per event) instead of every raw row.
datapoint_seconds = sa.Table(
    "datapoint_seconds",
    metadata,
    sa.Column(
        "event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("second", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False),
    sa.Column("total", sa.Float(53), nullable=False),
    sa.Column("lo", sa.Float(53), nullable=False),
    sa.Column("hi", sa.Float(53), nullable=False),
    sa.Column("last_value", sa.Float(53), nullable=True),
    sa.Column("last_ts", UTCDateTime, nullable=False),
)

log_entries = sa.Table(
    "log_entries",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("public_id", PublicId, nullable=False, unique=True),
    sa.Column("content", sa.String(500), nullable=False),
    sa.Column("logging_type", sa.String(10), nullable=False),
    sa.Column("status_type", sa.String(10), nullable=False),
    sa.Column("user_id", BigId, sa.ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    sa.Column("created_on", UTCDateTime, nullable=False),
    sa.Index("ix_log_entries_created", "created_on", "id"),
)

revoked_tokens = sa.Table(
    "revoked_tokens",
    metadata,
    sa.Column("jti", sa.String(64), primary_key=True),
    sa.Column("expires_at", UTCDateTime, nullable=False, index=True),
)

# Telemetry frame ids ``(controller_id, seq)``, committed in the same transaction as the frame's
# rows, with the ack the frame got (``rejected``: the ack's JSON list): a resent frame is answered
# from here instead of being stored again (contract §8). Pruned by ``committed_at`` after
# INGEST_FRAME_RETENTION_HOURS.
ingest_frames = sa.Table(
    "ingest_frames",
    metadata,
    sa.Column("controller_id", sa.String(64), primary_key=True),
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("accepted", sa.Integer, nullable=False),
    sa.Column("rejected", sa.Text, nullable=False),
    sa.Column("committed_at", UTCDateTime, nullable=False),
    sa.Index("ix_ingest_frames_committed", "committed_at"),
)

# Commands pushed to controllers (contract §8): one row per command, i.e. per committed actuator
# datapoint and target controller identity (``c:<controller_id>``, or ``s:<connection>`` for a
# connection without one). A row is deleted when its controller acks it, and pruned once
# ``expires_at`` (created + COMMAND_TTL_SECONDS) has passed; until then a ``hello`` naming its
# event sends it again. Deleting the event deletes its commands.
commands = sa.Table(
    "commands",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("public_id", PublicId, nullable=False, unique=True),
    sa.Column("target", sa.String(80), nullable=False),
    sa.Column(
        "event_id", BigId, sa.ForeignKey("events.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("value", sa.Float(53), nullable=False),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Index("ix_commands_target", "target", "event_id", "id"),
    sa.Index("ix_commands_expires", "expires_at"),
)

ALL_TABLES = (
    commands, ingest_frames, revoked_tokens, log_entries, datapoint_seconds, datapoint_counts,
    datapoints, experiments, events, users,
)

