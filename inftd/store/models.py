"""Typed SQLAlchemy 2.0 models of the core tables (see design.md, "Data flow").

Amounts of credits are integers; wei amounts are NUMERIC(78, 0) so any uint256 fits.
Every table here is created by an Alembic revision; a test proves they agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = JSON().with_variant(JSONB(), "postgresql")
Wei = Numeric(78, 0)
Address = String(42)
Hash32 = String(66)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class ChainBinding(Base):
    """Which chain and deployment this database belongs to (one row).

    The deploy block's hash fingerprints both the chain and the deployment, so a
    database is never mixed with a new chain that reuses the chain id.
    """

    __tablename__ = "chain_binding"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    deploy_block: Mapped[int] = mapped_column(BigInteger)
    deploy_block_hash: Mapped[str] = mapped_column(Hash32)
    package_address: Mapped[str] = mapped_column(Address)
    generation_address: Mapped[str] = mapped_column(Address)
    bound_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class SyncCursor(Base):
    """The indexer's checkpoint, written in the same transaction as the rows it covers."""

    __tablename__ = "sync_cursor"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(Hash32)
    reorgs: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    deepest_reorg: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class BlockWindow(Base):
    """Recent canonical block hashes, used to find the fork point of a reorg."""

    __tablename__ = "block_window"

    number: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    hash: Mapped[str] = mapped_column(Hash32)
    parent_hash: Mapped[str] = mapped_column(Hash32)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class ChainEvent(Base):
    """A decoded contract log, stored once whether it came by polling or by webhook."""

    __tablename__ = "chain_events"
    __table_args__ = (
        # A log is its block (hash) and its index there; the transaction follows from them.
        # Block number and log index lead, so the key is also the index of range reads,
        # chain-order scans and rollbacks, and a backfill appends to it in order: a key led
        # by a block hash took each insert to a random page and cost half of storing a log.
        UniqueConstraint("block_number", "log_index", "block_hash", "chain_id"),
        Index(None, "token_id", "block_number"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(Hash32)
    tx_hash: Mapped[str] = mapped_column(Hash32)
    log_index: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(Address)
    name: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]] = mapped_column(Json)
    token_id: Mapped[int | None] = mapped_column(BigInteger)  # the package token it concerns
    source: Mapped[str] = mapped_column(String(16))
    applied: Mapped[bool] = mapped_column(Boolean, default=False)
    problem: Mapped[str | None] = mapped_column(Text)  # why a projection could not apply it
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


# The events still to apply, in chain order. Partial: the indexer stores nearly every event
# already applied, and those rows never enter it.
_UNAPPLIED = ChainEvent.applied.is_(False)
Index(
    "ix_chain_events_unapplied",
    ChainEvent.block_number,
    ChainEvent.log_index,
    postgresql_where=_UNAPPLIED,
    sqlite_where=_UNAPPLIED,
)


class Agent(Base):
    """One agent per package token; credit columns are a cache of the ledger."""

    __tablename__ = "agents"
    __table_args__ = (
        CheckConstraint(
            "used_credits >= 0 AND reserved_credits >= 0 "
            "AND total_credits - used_credits - reserved_credits >= 0",
            name="credits_balance",
        ),
        Index(None, "owner"),
    )

    token_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    package_type: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str] = mapped_column(Address)
    total_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    used_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_credits: Mapped[int] = mapped_column(BigInteger, default=0)
    level: Mapped[int] = mapped_column(Integer, default=1)
    experience: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Learned signals (style/subject/provider weights with decay), kept apart from the
    # preferences the owner sets; see inftd/agents/learning.py.
    evolution: Mapped[dict[str, Any]] = mapped_column(Json, default=dict, server_default="{}")
    share_learning: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    agent_metadata: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    preferences: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    collection_influences: Mapped[list[str]] = mapped_column(Json, default=list)
    purchase_price_wei: Mapped[Decimal] = mapped_column(Wei, default=0)
    created_block: Mapped[int] = mapped_column(BigInteger)
    # The PackagePurchased that created the agent: a reorg that drops it drops the agent.
    created_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("chain_events.id", ondelete="CASCADE"), index=True
    )
    owner_since_block: Mapped[int] = mapped_column(BigInteger)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_activity: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CreditEntry(Base):
    """The credits ledger: balances derive from it; the key makes every entry idempotent."""

    __tablename__ = "credit_entries"
    __table_args__ = (Index(None, "token_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("agents.token_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    generation_id: Mapped[str | None] = mapped_column(String(36))
    chain_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("chain_events.id", ondelete="CASCADE")
    )
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Generation(Base):
    """A generation job; the rows are the queue (queued → running → succeeded|failed|cancelled)."""

    __tablename__ = "generations"
    __table_args__ = (
        UniqueConstraint("token_id", "idempotency_key"),
        UniqueConstraint("chain_request_id"),
        Index(None, "status", "priority", "created_at"),
        Index(None, "token_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("agents.token_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    options: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    source: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    chain_request_id: Mapped[int | None] = mapped_column(BigInteger)
    # A collaborative generation also draws on (and teaches) this agent.
    collaborator_token_id: Mapped[int | None] = mapped_column(
        ForeignKey("agents.token_id", ondelete="SET NULL")
    )
    chain_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("chain_events.id", ondelete="CASCADE")
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    credits_reserved: Mapped[int] = mapped_column(BigInteger, default=0)
    credits_used: Mapped[int] = mapped_column(BigInteger, default=0)
    provider: Mapped[str | None] = mapped_column(String(32))
    model: Mapped[str | None] = mapped_column(String(100))
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    content_uri: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(Hash32)
    content_type: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)
    # The owner asked to cancel a running job; its worker stops it (inftd/daemon/generation).
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # How it was made: the strategy's rounds/parts/route, usage, what the prompt builder added.
    detail: Mapped[dict[str, Any] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Mint(Base):
    """The relayer's record of one generation NFT: signed bytes are stored before broadcast."""

    __tablename__ = "mints"
    __table_args__ = (Index(None, "status"), Index(None, "signer", "nonce"))

    generation_id: Mapped[str] = mapped_column(
        ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True
    )
    request_key: Mapped[str] = mapped_column(Hash32, unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    signer: Mapped[str | None] = mapped_column(Address)
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    tx_hash: Mapped[str | None] = mapped_column(Hash32)
    raw_tx: Mapped[bytes | None] = mapped_column(LargeBinary)
    nft_token_id: Mapped[int | None] = mapped_column(BigInteger)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(64))  # the revert's error name
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class Memory(Base):
    """A memory of an agent, with its embedding stored as float32 bytes."""

    __tablename__ = "memories"
    __table_args__ = (Index(None, "token_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("agents.token_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    importance: Mapped[float] = mapped_column(Float, default=0.5)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    embedder: Mapped[str | None] = mapped_column(String(100))  # which model made the vector
    source_id: Mapped[str | None] = mapped_column(String(64))  # generation, message, ...
    merged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # summarised
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LearningEntry(Base):
    """Feedback on a generation (the seed's ``learningData``)."""

    __tablename__ = "learning_entries"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating_range"),
        Index(None, "token_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("agents.token_id", ondelete="CASCADE"))
    generation_id: Mapped[str | None] = mapped_column(
        ForeignKey("generations.id", ondelete="SET NULL")
    )
    rating: Mapped[int] = mapped_column(Integer)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AgentMessage(Base):
    """A message from one agent to another (cross-agent collaboration)."""

    __tablename__ = "agent_messages"
    __table_args__ = (Index(None, "to_token_id", "created_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    from_token_id: Mapped[int] = mapped_column(ForeignKey("agents.token_id", ondelete="CASCADE"))
    to_token_id: Mapped[int] = mapped_column(ForeignKey("agents.token_id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    body: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Collaboration(Base):
    """Permission for one agent (the grantee) to borrow another's influences; revocable."""

    __tablename__ = "collaborations"
    __table_args__ = (
        UniqueConstraint("granter_token_id", "grantee_token_id"),
        Index(None, "grantee_token_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    granter_token_id: Mapped[int] = mapped_column(ForeignKey("agents.token_id", ondelete="CASCADE"))
    grantee_token_id: Mapped[int] = mapped_column(ForeignKey("agents.token_id", ondelete="CASCADE"))
    granted_by: Mapped[str] = mapped_column(Address)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class EventRecord(Base):
    """Every event published to subscribers, numbered so clients can resume with ``since``."""

    __tablename__ = "events"
    __table_args__ = (Index(None, "token_id", "seq"),)

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    token_id: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    private: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuthNonce(Base):
    """A single-use Sign-In with Ethereum nonce."""

    __tablename__ = "auth_nonces"
    __table_args__ = (Index(None, "expires_at"),)

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(Address)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class PushSubscription(Base):
    """An owner's webhook URL for an agent's events (outbound push notifications)."""

    __tablename__ = "push_subscriptions"
    __table_args__ = (Index(None, "token_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("agents.token_id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(100))  # HMAC key shown once, at creation
    event_types: Mapped[list[str]] = mapped_column(Json, default=list)  # empty: all
    created_by: Mapped[str] = mapped_column(Address)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class PushDelivery(Base):
    """One event to one subscription; ``dead`` once retries are exhausted (the dead letters)."""

    __tablename__ = "push_deliveries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "event_seq"),
        Index(None, "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("push_subscriptions.id", ondelete="CASCADE")
    )
    event_seq: Mapped[int] = mapped_column(ForeignKey("events.seq", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The dispatcher that claimed it last, and until when no other may (None: unclaimed).
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, typed for insert/update/delete builders."""
    return cast(Table, model.__table__)


class ProviderCall(Base):
    """One call to an AI provider, failed or answered from the cache included: the spend
    ledger behind ``/v1/analytics/providers``. No foreign keys: the money was spent even if
    the generation or agent is later rolled back by a reorg."""

    __tablename__ = "provider_calls"
    __table_args__ = (
        Index(None, "created_at"),
        Index(None, "token_id", "created_at"),
        Index(None, "generation_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    generation_id: Mapped[str | None] = mapped_column(String(36))
    token_id: Mapped[int | None] = mapped_column(BigInteger)
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(100))
    capability: Mapped[str] = mapped_column(String(16))  # text or image
    purpose: Mapped[str] = mapped_column(String(16))  # generate, judge, plan, part, refine
    outcome: Mapped[str] = mapped_column(String(16))  # ok, or the ProviderError kind
    http_status: Mapped[int | None] = mapped_column(Integer)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    images: Mapped[int] = mapped_column(Integer, default=0)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)  # token counts estimated
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    # What the same work would have cost on the dearest capable candidate (routing saving).
    baseline_usd: Mapped[float] = mapped_column(Float, default=0.0)
    # A cache hit: what the stored answer cost when it was made (cache saving).
    cache_saved_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Content(Base):
    """A stored piece of generated content (a file named by its sha256), with its type;
    written with the generation that made it, so only finished work is served."""

    __tablename__ = "contents"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)  # hex
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RelayerNonce(Base):
    """The relayer's next nonce for one signing key (inftd/daemon/relayer/nonces.py)."""

    __tablename__ = "relayer_nonces"

    signer: Mapped[str] = mapped_column(Address, primary_key=True)
    next_nonce: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


class VoidedMint(Base):
    """A signed mint whose generation a reorg removed (its request or its agent left the
    chain): the nonce stays the key's, so the relayer spends it with a cancel (a 0-value
    transfer to itself) unless the mint itself gets mined first. ``outcome`` is None while
    the nonce is open; then ``cancelled`` or ``minted`` (an NFT for a request the chain no
    longer has, which a reorg after signing cannot take back)."""

    __tablename__ = "voided_mints"
    __table_args__ = (Index(None, "signer", "outcome", "nonce"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    generation_id: Mapped[str] = mapped_column(String(36))
    request_key: Mapped[str] = mapped_column(Hash32, unique=True)
    signer: Mapped[str] = mapped_column(Address)
    nonce: Mapped[int] = mapped_column(BigInteger)
    # Fees of the newest transaction at the nonce: the mint's newest attempt, then its cancel.
    max_fee_per_gas: Mapped[Decimal] = mapped_column(Wei)
    max_priority_fee_per_gas: Mapped[Decimal] = mapped_column(Wei)
    cancel_tx_hash: Mapped[str | None] = mapped_column(Hash32)
    cancel_raw_tx: Mapped[bytes | None] = mapped_column(LargeBinary)
    outcome: Mapped[str | None] = mapped_column(String(16))
    voided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class MintAttempt(Base):
    """One signed mint transaction, stored before it is broadcast; a fee bump is another
    attempt at the same nonce. ``outcome`` is None while its nonce is open."""

    __tablename__ = "mint_attempts"
    __table_args__ = (Index(None, "signer", "outcome", "nonce"), Index(None, "generation_id"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    generation_id: Mapped[str] = mapped_column(
        ForeignKey("mints.generation_id", ondelete="CASCADE")
    )
    signer: Mapped[str] = mapped_column(Address)
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(Hash32, unique=True)
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    to_address: Mapped[str] = mapped_column(Address)
    call_data: Mapped[bytes] = mapped_column(LargeBinary)
    gas_limit: Mapped[int] = mapped_column(BigInteger)
    max_fee_per_gas: Mapped[Decimal] = mapped_column(Wei)
    max_priority_fee_per_gas: Mapped[Decimal] = mapped_column(Wei)
    signed_block: Mapped[int] = mapped_column(BigInteger)  # the head when it was signed
    broadcast_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    outcome: Mapped[str | None] = mapped_column(String(16))  # mined reverted replaced dropped
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DaemonProcess(Base):
    """One running ``inftd run`` process: its roles and what they are doing, written every
    ``daemon.heartbeat_interval``; removed on a clean stop (inftd/daemon/process/heartbeat.py)."""

    __tablename__ = "daemon_processes"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # host:pid:random
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    roles: Mapped[list[str]] = mapped_column(Json)
    version: Mapped[str] = mapped_column(String(32))
    # Seconds between its writes: a row older than a few of them is stale.
    heartbeat_interval: Mapped[float] = mapped_column(Float)
    # Per role: leader or standby, jobs running, mints in flight (see heartbeat.py).
    facts: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
