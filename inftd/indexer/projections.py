"""Projections: confirmed chain events, applied in chain order, become agent state.

    PackagePurchased      → agent created, its credits granted through the ledger
    Transfer              → owner updated (a mint's Transfer is the purchase's; skipped)
    CreditsAdded          → top-up granted
    GenerationRequested   → generation queued with source "chain"
    AgentMetadataUpdated  → metadata stored
    GenerationMinted      → the matching mint confirmed

Events are applied in batches: each batch is planned in memory in chain order (``Plan``),
then written with a few bulk statements. An event that cannot apply (a transfer of an
unknown token, say) is marked applied with its problem recorded, and the others go on.
``apply_confirmed`` applies events stored earlier; new ones mostly take the fast path of
``inftd.indexer.direct``, which plans them before they are stored.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, bindparam, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.events import NewEvent, record_events
from inftd.agents.ledger import grant_entry
from inftd.indexer.bulk import insert_new
from inftd.indexer.decode import ChainLog
from inftd.store.db import insert_many
from inftd.store.models import Agent, ChainEvent, CreditEntry, Generation, Mint, table_of, utcnow
from inftd.store.sql import insert_ignore

APPLY_BATCH = 5000  # stored events read back, planned and written together
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


def chain_generation_id(chain_id: int, request_id: int, tx_hash: str) -> str:
    """The same on-chain request always maps to the same generation id, also re-included
    in another block after a reorg (its transaction hash stays). The request id alone is
    not enough: on a new branch the contract hands the same id to another request."""
    return str(uuid.uuid5(GENERATION_NAMESPACE, f"{chain_id}:{request_id}:{tx_hash.lower()}"))


@dataclass
class ApplyResult:
    applied: Counter[str] = field(default_factory=Counter)
    problems: int = 0
    direct: int = 0  # events applied straight from memory (apply_new), not read back

    def add(self, other: ApplyResult) -> None:
        self.applied.update(other.applied)
        self.problems += other.problems
        self.direct += other.direct


@dataclass
class Plan:
    """The writes a batch of events amounts to, collected in chain order.

    Events are named by their ``ref``, their place in the batch; ``write`` is given the
    batch's event ids, since the events of the fast path get theirs only as they are stored.
    """

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

    def add(self, event: ChainLog, ref: int) -> None:
        handler = HANDLERS.get(event.name)
        token = event.token_id
        if handler is None:
            problem = None  # an event with nothing to apply (none so far)
        elif token is None:
            problem = f"{event.name} names no package token"
        else:
            problem = handler(self, event, ref, token)
        if problem:
            self.problems[ref] = problem
            self.result.problems += 1
        else:
            self.result.applied[event.name] += 1
            self._tell(event)

    def _tell(self, event: ChainLog) -> None:
        kind = DOMAIN_EVENTS.get(event.name)
        if kind is None or (event.name == "Transfer" and event.args["from"] == ZERO_ADDRESS):
            return
        data: dict[str, Any] = {"block": event.block_number, "txHash": event.tx_hash}
        data.update(event.args)  # all but the package token, which the event carries apart
        data.pop("tokenId", None)
        data.pop("packageTokenId", None)
        self.events.append(NewEvent(kind, event.token_id, data))

    def _key(self, event: ChainLog) -> str:
        return f"chain:{self.chain_id}:{event.block_hash}:{event.tx_hash}:{event.log_index}"

    def _unknown(self, event: ChainLog, token: int) -> str | None:
        if token in self.known:
            return None
        return f"{event.name} for package token {token}, which has no agent"

    def _on_purchased(self, event: ChainLog, ref: int, token: int) -> str | None:
        args = event.args
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
            "created_event_id": ref,
        }
        self._grant(event, ref, token, "grant", int(args["credits"]))
        return None

    def _grant(self, event: ChainLog, ref: int, token: int, kind: str, amount: int) -> None:
        self.ledger.append(grant_entry(token, amount, kind, self._key(event), ref))
        created = self.agents.get(token)
        if created is not None:
            created["total_credits"] += amount  # an agent of this batch is inserted with them
        else:
            self.credits[token] += amount

    def _on_transfer(self, event: ChainLog, ref: int, token: int) -> str | None:
        if event.args["from"] == ZERO_ADDRESS:
            return None  # the mint of a purchase: PackagePurchased creates the agent
        problem = self._unknown(event, token)
        if problem is None:
            self.owners[token] = (event.args["to"], event.block_number)
        return problem

    def _on_credits_added(self, event: ChainLog, ref: int, token: int) -> str | None:
        problem = self._unknown(event, token)
        if problem is None:
            self._grant(event, ref, token, "topup", int(event.args["credits"]))
        return problem

    def _on_metadata(self, event: ChainLog, ref: int, token: int) -> str | None:
        problem = self._unknown(event, token)
        if problem is None:
            args = event.args
            self.metadata[token] = {
                "uri": args["uri"],
                "stateHash": args["stateHash"],
                "block": event.block_number,
            }
        return problem

    def _on_requested(self, event: ChainLog, ref: int, token: int) -> str | None:
        problem = self._unknown(event, token)
        if problem is not None:
            return problem
        args = event.args
        request_id = int(args["requestId"])
        self.generations.append(
            {
                "id": chain_generation_id(self.chain_id, request_id, event.tx_hash),
                "token_id": token,
                "kind": GENERATION_KINDS.get(int(args["kind"]), "text"),
                "prompt": args["prompt"],
                "options": {"requester": args["requester"]},
                "source": "chain",
                "chain_request_id": request_id,
                "chain_event_id": ref,
            }
        )
        return None

    def _on_minted(self, event: ChainLog, ref: int, token: int) -> str | None:
        self.mints.append(
            {
                "b_key": event.args["requestKey"],
                "b_nft": int(event.args["tokenId"]),
                "b_block": event.block_number,
                "b_tx": event.tx_hash,
            }
        )
        return None

    async def write(self, conn: AsyncConnection, ids: Sequence[int], *, new: bool = False) -> None:
        """The batch's effects, the problems of its events and what subscribers are told;
        ``ids[ref]`` is the id of event ``ref``. Marking events applied is the caller's.

        ``new``: the events were never applied before (the fast path), so their agents and
        ledger entries are new too and may go by COPY, which fails on a conflict where the
        careful path skips it."""
        agents = _resolved(self.agents.values(), "created_event_id", ids)
        ledger = _resolved(self.ledger, "chain_event_id", ids)
        if new:
            await insert_new(conn, AGENTS, agents, skip_conflicts=False)
            await insert_new(conn, table_of(CreditEntry), ledger, skip_conflicts=True)
        else:
            await insert_many(conn, AGENTS, agents)
            await insert_many(conn, table_of(CreditEntry), ledger, skip_conflicts=True)
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
            generations = _resolved(self.generations, "chain_event_id", ids)
            await conn.execute(insert_ignore(conn, table_of(Generation)), generations)
        if self.mints:
            await self._untell_known_mints(conn)
            await _update_many(conn, _confirm_mint(), self.mints)
        await _update_many(conn, _set_problem(), [
            {"b_id": ids[ref], "b_p": p} for ref, p in self.problems.items()
        ])  # fmt: skip
        await record_events(conn, self.events)

    async def _untell_known_mints(self, conn: AsyncConnection) -> None:
        """Drop ``mint.confirmed`` for mints already confirmed (by the relayer's receipt):
        subscribers hear of each mint's confirmation once, whichever path saw it first."""
        keys = [m["b_key"] for m in self.mints]
        done = set(
            await conn.scalars(
                select(Mint.request_key).where(
                    Mint.request_key.in_(keys), Mint.status == "confirmed"
                )
            )
        )
        if done:
            self.events = [
                e
                for e in self.events
                if not (e.type == "mint.confirmed" and e.payload.get("requestKey") in done)
            ]


def _resolved(
    rows: Iterable[dict[str, Any]], column: str, ids: Sequence[int]
) -> list[dict[str, Any]]:
    """``rows`` with the event ref in ``column`` replaced by the event's id."""
    return [row | {column: ids[row[column]]} for row in rows]


Handler = Callable[[Plan, ChainLog, int, int], str | None]  # → the problem, if any
HANDLERS: dict[str, Handler] = {
    "PackagePurchased": Plan._on_purchased,
    "Transfer": Plan._on_transfer,
    "CreditsAdded": Plan._on_credits_added,
    "AgentMetadataUpdated": Plan._on_metadata,
    "GenerationRequested": Plan._on_requested,
    "GenerationMinted": Plan._on_minted,
}


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


def _set_problem() -> Any:
    return update(EVENTS).where(EVENTS.c.id == bindparam("b_id")).values(problem=bindparam("b_p"))


async def _pending_batch(
    conn: AsyncConnection, from_block: int, up_to_block: int
) -> list[tuple[int, ChainLog]]:
    rows = await conn.execute(
        select(
            ChainEvent.id,
            ChainEvent.block_number,
            ChainEvent.block_hash,
            ChainEvent.tx_hash,
            ChainEvent.log_index,
            ChainEvent.address,
            ChainEvent.name,
            ChainEvent.args,
            ChainEvent.token_id,
        )
        .where(
            ChainEvent.applied.is_(False),
            ChainEvent.block_number >= from_block,
            ChainEvent.block_number <= up_to_block,
        )
        .order_by(ChainEvent.block_number, ChainEvent.log_index)
        .limit(APPLY_BATCH)
    )
    return [(row[0], ChainLog(*row[1:])) for row in rows]


async def known_agents(conn: AsyncConnection, tokens: Iterable[int]) -> set[int]:
    """Which of ``tokens`` have an agent."""
    wanted = list(tokens)
    known: set[int] = set()
    for start in range(0, len(wanted), APPLY_BATCH):  # SQLite takes 32,766 parameters at most
        chunk = wanted[start : start + APPLY_BATCH]
        column = AGENTS.c.token_id
        known.update(await conn.scalars(select(column).where(_in(conn, column, chunk))))
    return known


def token_ids(events: Iterable[ChainLog]) -> set[int]:
    """The package tokens the events name."""
    return {e.token_id for e in events if e.token_id is not None}


async def apply_confirmed(conn: AsyncConnection, chain_id: int, up_to_block: int) -> ApplyResult:
    """Apply every stored, unapplied event up to ``up_to_block``, in chain order."""
    result = ApplyResult()
    from_block = 0  # every unapplied event is at or after the last block a batch reached
    while events := await _pending_batch(conn, from_block, up_to_block):
        from_block = events[-1][1].block_number
        plan = Plan(chain_id, await known_agents(conn, token_ids(e for _, e in events)))
        for ref, (_, event) in enumerate(events):
            plan.add(event, ref)
        ids = [event_id for event_id, _ in events]
        await plan.write(conn, ids)
        await conn.execute(update(EVENTS).where(_in(conn, EVENTS.c.id, ids)).values(applied=True))
        result.add(plan.result)
    return result
