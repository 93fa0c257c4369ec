"""Indexer: projection problems, the token an event concerns, agent origin, reorg counters.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "created_event_id",
                sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                nullable=True,
            )
        )
        batch_op.create_index(
            batch_op.f("ix_agents_created_event_id"), ["created_event_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_agents_created_event_id_chain_events"),
            "chain_events",
            ["created_event_id"],
            ["id"],
            ondelete="CASCADE",
        )

    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("problem", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("token_id", sa.BigInteger(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_chain_events_token_id_block_number"),
            ["token_id", "block_number"],
            unique=False,
        )

    with op.batch_alter_table("sync_cursor", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reorgs", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("deepest_reorg", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("sync_cursor", schema=None) as batch_op:
        batch_op.drop_column("deepest_reorg")
        batch_op.drop_column("reorgs")

    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_events_token_id_block_number"))
        batch_op.drop_column("token_id")
        batch_op.drop_column("problem")

    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_agents_created_event_id_chain_events"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_agents_created_event_id"))
        batch_op.drop_column("created_event_id")
