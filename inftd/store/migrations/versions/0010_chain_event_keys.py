"""Chain events: a key led by block number and log index; a partial index of unapplied ones.

The unique key (chain_id, block_hash, tx_hash, log_index) put every insert at a random place
of a wide text index; (block_number, log_index, block_hash, chain_id) identifies the same log
(the transaction follows from block and index), grows in order during a backfill and serves
the range reads the index (block_number, log_index) served. Unapplied events get a partial
index in chain order instead of (applied, block_number), which held every row.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UNAPPLIED = sa.column("applied").is_(False)


def upgrade() -> None:
    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_chain_events_chain_id_block_hash_tx_hash_log_index"), type_="unique"
        )
        batch_op.drop_index(batch_op.f("ix_chain_events_applied_block_number"))
        batch_op.drop_index(batch_op.f("ix_chain_events_block_number_log_index"))
        batch_op.create_unique_constraint(
            batch_op.f("uq_chain_events_block_number_log_index_block_hash_chain_id"),
            ["block_number", "log_index", "block_hash", "chain_id"],
        )
        batch_op.create_index(
            "ix_chain_events_unapplied",
            ["block_number", "log_index"],
            unique=False,
            postgresql_where=UNAPPLIED,
            sqlite_where=UNAPPLIED,
        )


def downgrade() -> None:
    with op.batch_alter_table("chain_events", schema=None) as batch_op:
        batch_op.drop_index("ix_chain_events_unapplied")
        batch_op.drop_constraint(
            batch_op.f("uq_chain_events_block_number_log_index_block_hash_chain_id"),
            type_="unique",
        )
        batch_op.create_index(
            batch_op.f("ix_chain_events_block_number_log_index"),
            ["block_number", "log_index"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_chain_events_applied_block_number"),
            ["applied", "block_number"],
            unique=False,
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_chain_events_chain_id_block_hash_tx_hash_log_index"),
            ["chain_id", "block_hash", "tx_hash", "log_index"],
        )
