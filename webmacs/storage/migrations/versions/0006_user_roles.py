"""Roles replace the admin flag: ``users.role`` is viewer, operator or admin (issue 11).

Revision ID: 0006_user_roles
Revises: 0005_commands
Create Date: 2026-12-03

Admins stay admins; every other existing user becomes an operator, which keeps what they could
do before (write the lab's data). ``admin`` is dropped, so the role is the one source of truth;
the API derives ``admin`` from it for v2 clients.

The column is added and dropped in place, on SQLite too (``ALTER TABLE … DROP COLUMN``, SQLite
3.35+), never by rebuilding the table: the upgrade runs in one transaction with foreign keys on,
where dropping the old ``users`` table would set every event's, experiment's and log entry's
``user_id`` to NULL.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_user_roles"
down_revision = "0005_commands"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The default is what a v2 client's ``admin: false`` means; it also fills the existing rows.
    op.add_column("users", sa.Column("role", sa.String(10), nullable=False,
                                     server_default=sa.text("'operator'")))
    op.execute("UPDATE users SET role = 'admin' WHERE admin")
    op.drop_column("users", "admin")
