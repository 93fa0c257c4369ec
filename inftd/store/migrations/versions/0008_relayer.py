"""The mint relayer: a nonce counter per signing key, every signed attempt kept, and a
mint's decoded error and retry time.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WEI = sa.Numeric(precision=78, scale=0)


def upgrade() -> None:
    with op.batch_alter_table("mints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "relayer_nonces",
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("next_nonce", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signer", name=op.f("pk_relayer_nonces")),
    )
    op.create_table(
        "mint_attempts",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("generation_id", sa.String(length=36), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=False),
        sa.Column("raw_tx", sa.LargeBinary(), nullable=False),
        sa.Column("to_address", sa.String(length=42), nullable=False),
        sa.Column("call_data", sa.LargeBinary(), nullable=False),
        sa.Column("gas_limit", sa.BigInteger(), nullable=False),
        sa.Column("max_fee_per_gas", WEI, nullable=False),
        sa.Column("max_priority_fee_per_gas", WEI, nullable=False),
        sa.Column("signed_block", sa.BigInteger(), nullable=False),
        sa.Column("broadcast_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["mints.generation_id"],
            name=op.f("fk_mint_attempts_generation_id_mints"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mint_attempts")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_mint_attempts_tx_hash")),
    )
    with op.batch_alter_table("mint_attempts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mint_attempts_signer_outcome_nonce"),
            ["signer", "outcome", "nonce"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_mint_attempts_generation_id"), ["generation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("mint_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mint_attempts_generation_id"))
        batch_op.drop_index(batch_op.f("ix_mint_attempts_signer_outcome_nonce"))
    op.drop_table("mint_attempts")
    op.drop_table("relayer_nonces")
    with op.batch_alter_table("mints", schema=None) as batch_op:
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("error_code")
