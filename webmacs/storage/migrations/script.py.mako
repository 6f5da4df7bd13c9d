"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

Explicit column types (coltypes), never the objects of tables.py. On STORAGE_BACKEND=timescale,
datapoints is a hypertable (0001_base): a change to it may need its own statements there
(op.get_context().config.attributes["backend"] == "timescale").
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
${imports if imports else ""}
from webmacs.storage.migrations.coltypes import BigId, Double, Instant, PublicId  # noqa: F401

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    ${upgrades if upgrades else "pass"}
