"""Voided mints: signed mints whose generation a reorg removed, kept until their nonce is
spent (by a cancel, or by the mint itself).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WEI = sa.Numeric(precision=78, scale=0)


def upgrade() -> None:
    op.create_table(
        "voided_mints",
        sa.Column("id", ID, nullable=False),
        sa.Column("generation_id", sa.String(length=36), nullable=False),
        sa.Column("request_key", sa.String(length=66), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_per_gas", WEI, nullable=False),
        sa.Column("max_priority_fee_per_gas", WEI, nullable=False),
        sa.Column("cancel_tx_hash", sa.String(length=66), nullable=True),
        sa.Column("cancel_raw_tx", sa.LargeBinary(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voided_mints")),
        sa.UniqueConstraint("request_key", name=op.f("uq_voided_mints_request_key")),
    )
    with op.batch_alter_table("voided_mints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_voided_mints_signer_outcome_nonce"),
            ["signer", "outcome", "nonce"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("voided_mints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voided_mints_signer_outcome_nonce"))
    op.drop_table("voided_mints")
