"""Daemon processes: a heartbeat row per running ``inftd run`` process and its roles.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "daemon_processes",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("roles", JSON, nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("heartbeat_interval", sa.Float(), nullable=False),
        sa.Column("facts", JSON, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daemon_processes")),
    )
    with op.batch_alter_table("daemon_processes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_daemon_processes_heartbeat_at"), ["heartbeat_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("daemon_processes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_daemon_processes_heartbeat_at"))
    op.drop_table("daemon_processes")
