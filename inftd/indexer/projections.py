"""Projections: confirmed chain events, applied in chain order, become agent state.

    PackagePurchased      → agent created, its credits granted through the ledger
    Transfer              → owner updated (a mint's Transfer is the purchase's; skipped)
    CreditsAdded          → top-up granted
    GenerationRequested   → generation queued with source "chain"
    AgentMetadataUpdated  → metadata stored
    GenerationMinted      → the matching mint confirmed

Events are applied in batches: each batch is planned in memory in chain order, then
written with a few bulk statements. An event that cannot apply (a transfer of an unknown
token, say) is marked applied with its problem recorded, and the others go on.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.events import NewEvent, record_events
from inftd.agents.ledger import grant_entry
from inftd.store.db import insert_many
from inftd.store.models import Agent, ChainEvent, CreditEntry, Generation, Mint, table_of, utcnow
from inftd.store.sql import insert_ignore

APPLY_BATCH = 5000  # events planned and written together
ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
GENERATION_KINDS = {0: "text", 1: "image"}
DOMAIN_EVENTS = {  # chain event → what subscribers of the agent are told
    "PackagePurchased": "agent.created",
    "Transfer": "owner.changed",
    "CreditsAdded": "credits.changed",
    "AgentMetadataUpdated": "metadata.updated",
    "GenerationRequested": "generation.queued",
    "GenerationMinted": "mint.confirmed",
}
GENERATION_NAMESPACE = uuid.UUID("5b0f7a52-6c1e-4c54-9a8e-7f1d3c2b9e10")  # chain request ids

AGENTS = table_of(Agent)
EVENTS = table_of(ChainEvent)


def chain_generation_id(chain_id: int, request_id: int) -> str:
    """The same on-chain request always maps to the same generation id."""
    return str(uuid.uuid5(GENERATION_NAMESPACE, f"{chain_id}:{request_id}"))


@dataclass
class ApplyResult:
    applied: Counter[str] = field(default_factory=Counter)
    problems: int = 0

    def add(self, other: ApplyResult) -> None:
        self.applied.update(other.applied)
        self.problems += other.problems


@dataclass
class _Plan:
    """The writes a batch of events amounts to, collected in chain order."""

    chain_id: int
    known: set[int]
    agents: dict[int, dict[str, Any]] = field(default_factory=dict)  # created here, by token
    ledger: list[dict[str, Any]] = field(default_factory=list)
    credits: Counter[int] = field(default_factory=Counter)
    owners: dict[int, tuple[str, int]] = field(default_factory=dict)
    metadata: dict[int, dict[str, Any]] = field(default_factory=dict)
    generations: list[dict[str, Any]] = field(default_factory=list)
    mints: list[dict[str, Any]] = field(default_factory=list)
    problems: dict[int, str] = field(default_factory=dict)
    events: list[NewEvent] = field(default_factory=list)  # told to subscribers on commit
    result: ApplyResult = field(default_factory=ApplyResult)

    def add(self, event: Row[Any]) -> None:
        handler = getattr(self, f"_on_{event.name}", None)
        problem = handler(event) if handler else None
        if problem:
            self.problems[event.id] = problem
            self.result.problems += 1
        else:
            self.result.applied[event.name] += 1
            self._tell(event)

    def _tell(self, event: Row[Any]) -> None:
        kind = DOMAIN_EVENTS.get(event.name)
        if kind is None or (event.name == "Transfer" and event.args["from"] == ZERO_ADDRESS):
            return
        data = {
            "block": event.block_number,
            "txHash": event.tx_hash,
            **{k: v for k, v in event.args.items() if k not in ("tokenId", "packageTokenId")},
        }
        self.events.append(NewEvent(kind, event.token_id, data))

    def _key(self, event: Row[Any]) -> str:
        return f"chain:{self.chain_id}:{event.block_hash}:{event.tx_hash}:{event.log_index}"

    def _unknown(self, event: Row[Any]) -> str | None:
        if event.token_id in self.known:
            return None
        return f"{event.name} for package token {event.token_id}, which has no agent"

    def _on_PackagePurchased(self, event: Row[Any]) -> str | None:
        args, token = event.args, event.token_id
        if token in self.known:
            return f"package token {token} already has an agent"
        self.known.add(token)
        self.agents[token] = {
            "token_id": token,
            "package_type": int(args["packageType"]),
            "owner": args["buyer"],
            "total_credits": 0,
            "purchase_price_wei": int(args["price"]),
            "created_block": event.block_number,
            "owner_since_block": event.block_number,
            "created_event_id": event.id,
        }
        self._grant(event, "grant", int(args["credits"]))
        return None

    def _grant(self, event: Row[Any], kind: str, amount: int) -> None:
        token = event.token_id
        self.ledger.append(grant_entry(token, amount, kind, self._key(event), event.id))
        created = self.agents.get(token)
        if created is not None:
            created["total_credits"] += amount  # an agent of this batch is inserted with them
        else:
            self.credits[token] += amount

    def _on_Transfer(self, event: Row[Any]) -> str | None:
        if event.args["from"] == ZERO_ADDRESS:
            return None  # the mint of a purchase: PackagePurchased creates the agent
        problem = self._unknown(event)
        if problem is None:
            self.owners[event.token_id] = (event.args["to"], event.block_number)
        return problem

    def _on_CreditsAdded(self, event: Row[Any]) -> str | None:
        problem = self._unknown(event)
        if problem is None:
            self._grant(event, "topup", int(event.args["credits"]))
        return problem

    def _on_AgentMetadataUpdated(self, event: Row[Any]) -> str | None:
        problem = self._unknown(event)
        if problem is None:
            args = event.args
            self.metadata[event.token_id] = {
                "uri": args["uri"],
                "stateHash": args["stateHash"],
                "block": event.block_number,
            }
        return problem

    def _on_GenerationRequested(self, event: Row[Any]) -> str | None:
        problem = self._unknown(event)
        if problem is not None:
            return problem
        args = event.args
        request_id = int(args["requestId"])
        self.generations.append(
            {
                "id": chain_generation_id(self.chain_id, request_id),
                "token_id": event.token_id,
                "kind": GENERATION_KINDS.get(int(args["kind"]), "text"),
                "prompt": args["prompt"],
                "options": {"requester": args["requester"]},
                "source": "chain",
                "chain_request_id": request_id,
                "chain_event_id": event.id,
            }
        )
        return None

    def _on_GenerationMinted(self, event: Row[Any]) -> str | None:
        self.mints.append(
            {
                "b_key": event.args["requestKey"],
                "b_nft": int(event.args["tokenId"]),
                "b_block": event.block_number,
                "b_tx": event.tx_hash,
            }
        )
        return None

    async def write(self, conn: AsyncConnection, event_ids: list[int]) -> None:
        await insert_many(conn, AGENTS, list(self.agents.values()))
        await insert_many(conn, table_of(CreditEntry), self.ledger, skip_conflicts=True)
        await _update_many(conn, _add_credits(), [
            {"b_token": t, "b_amount": n} for t, n in self.credits.items()
        ])  # fmt: skip
        await _update_many(conn, _set_owner(), [
            {"b_token": t, "b_owner": o, "b_block": b} for t, (o, b) in self.owners.items()
        ])  # fmt: skip
        await _update_many(conn, _set_metadata(), [
            {"b_token": t, "b_meta": m} for t, m in self.metadata.items()
        ])  # fmt: skip
        if self.generations:
            await conn.execute(insert_ignore(conn, table_of(Generation)), self.generations)
        await _update_many(conn, _confirm_mint(), self.mints)
        await _mark_applied(conn, event_ids, self.problems)
        await record_events(conn, self.events)


async def _update_many(conn: AsyncConnection, statement: Any, params: list[dict[str, Any]]) -> None:
    if params:
        await conn.execute(statement, params)


def _add_credits() -> Any:
    return (
        update(AGENTS)
        .where(AGENTS.c.token_id == bindparam("b_token"))
        .values(
            total_credits=AGENTS.c.total_credits + bindparam("b_amount"), last_activity=utcnow()
        )
    )


def _set_owner() -> Any:
    return (
        update(AGENTS)
        .where(AGENTS.c.token_id == bindparam("b_token"))
        .values(owner=bindparam("b_owner"), owner_since_block=bindparam("b_block"))
    )


def _set_metadata() -> Any:
    return (
        update(AGENTS)
        .where(AGENTS.c.token_id == bindparam("b_token"))
        .values(agent_metadata=bindparam("b_meta", type_=AGENTS.c.agent_metadata.type))
    )


def _confirm_mint() -> Any:
    mints = table_of(Mint)
    return (
        update(mints)
        .where(mints.c.request_key == bindparam("b_key"))
        .values(
            status="confirmed",
            nft_token_id=bindparam("b_nft"),
            block_number=bindparam("b_block"),
            tx_hash=bindparam("b_tx"),
        )
    )


def _in(conn: AsyncConnection, column: ColumnElement[int], ids: list[int]) -> ColumnElement[bool]:
    """``column IN ids``; on PostgreSQL ``= ANY(array)``: one parameter, where thousands of IN
    parameters cost the driver more than the statement costs the server."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, ids, type_=postgresql.ARRAY(BigInteger)))
    return column.in_(ids)


async def _mark_applied(conn: AsyncConnection, ids: list[int], problems: dict[int, str]) -> None:
    await conn.execute(update(EVENTS).where(_in(conn, EVENTS.c.id, ids)).values(applied=True))
    await _update_many(
        conn,
        update(EVENTS).where(EVENTS.c.id == bindparam("b_id")).values(problem=bindparam("b_p")),
        [{"b_id": i, "b_p": p} for i, p in problems.items()],
    )


async def _pending_batch(
    conn: AsyncConnection, from_block: int, up_to_block: int
) -> list[Row[Any]]:
    rows = await conn.execute(
        select(
            ChainEvent.id,
            ChainEvent.name,
            ChainEvent.args,
            ChainEvent.token_id,
            ChainEvent.block_number,
            ChainEvent.block_hash,
            ChainEvent.tx_hash,
            ChainEvent.log_index,
        )
        .where(
            ChainEvent.applied.is_(False),
            ChainEvent.block_number >= from_block,
            ChainEvent.block_number <= up_to_block,
        )
        .order_by(ChainEvent.block_number, ChainEvent.log_index)
        .limit(APPLY_BATCH)
    )
    return list(rows)


async def apply_confirmed(conn: AsyncConnection, chain_id: int, up_to_block: int) -> ApplyResult:
    """Apply every stored, unapplied event up to ``up_to_block``, in chain order."""
    result = ApplyResult()
    from_block = 0  # every unapplied event is at or after the last block a batch reached
    while events := await _pending_batch(conn, from_block, up_to_block):
        from_block = events[-1].block_number
        tokens = list({e.token_id for e in events if e.token_id is not None})
        known = set(
            await conn.scalars(
                select(AGENTS.c.token_id).where(_in(conn, AGENTS.c.token_id, tokens))
            )
        )
        plan = _Plan(chain_id=chain_id, known=known)
        for event in events:
            plan.add(event)
        await plan.write(conn, [e.id for e in events])
        result.add(plan.result)
    return result
