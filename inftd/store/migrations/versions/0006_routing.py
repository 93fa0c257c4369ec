"""Provider calls: every call the router makes, with its cost and outcome (spend analytics).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "provider_calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("generation_id", sa.String(length=36), nullable=True),
        sa.Column("token_id", sa.BigInteger(), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("capability", sa.String(length=16), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("baseline_usd", sa.Float(), nullable=False),
        sa.Column("cache_saved_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_calls")),
    )
    with op.batch_alter_table("provider_calls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_provider_calls_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_provider_calls_generation_id"), ["generation_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_provider_calls_token_id_created_at"),
            ["token_id", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("provider_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_provider_calls_token_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_provider_calls_generation_id"))
        batch_op.drop_index(batch_op.f("ix_provider_calls_created_at"))
    op.drop_table("provider_calls")
