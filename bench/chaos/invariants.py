"""The invariants of the design (``/work/shared/design.md``) checked against the canonical
chain and a database, after a chaos run has gone quiet.

1. One agent per purchase on the canonical chain, with exactly the credits of its
   ``PackagePurchased`` and ``CreditsAdded`` events; the owner is ``ownerOf``; no other agent.
2. Credits never negative; the cached balances equal the ledger's; no generation committed
   twice; a finished generation holds no reservation; a succeeded one used what it committed.
3. After reorgs the state equals a fresh recompute from the canonical chain (a new database
   indexed from scratch): the same agents, chain events and chain-requested generations.
4. Every succeeded generation minted exactly once on chain (``GenerationMinted`` with its
   ``requestKey``), its mint row confirmed with that NFT; no NFT for anything else, except
   a mint a reorg voided after it was signed (its request or agent left the chain) that got
   mined before its cancel; every voided nonce settled, as its outcome says.
7. Every generation the API accepted (202) exists and is finished (only a reorg that took
   its agent away, even for a while, may remove it); every other generation (on-chain
   requests) is finished.

``check`` returns every violation found and how many checks each invariant made, so a
run that checked nothing is visible as such.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.chaos.chain import ChainFacts
from inftd.daemon.generation.mints import request_key
from inftd.store.models import (
    Agent,
    ChainEvent,
    CreditEntry,
    EventRecord,
    Generation,
    Mint,
    VoidedMint,
)

FINAL = ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Violation:
    invariant: int
    what: str

    def __str__(self) -> str:
        return f"invariant {self.invariant}: {self.what}"


@dataclass
class Findings:
    checks: Counter[int] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)

    def expect(self, invariant: int, ok: bool, what: str) -> None:
        self.checks[invariant] += 1
        if not ok:
            self.violations.append(Violation(invariant, what))


@dataclass
class Snapshot:
    """The rows the checks read, taken in one read."""

    agents: dict[int, Any]
    entries: list[Any]
    generations: dict[str, Any]
    mints: dict[str, Any]
    events: set[tuple[str, str, int, str]]
    voids: dict[str, str | None]  # voided mints: request key -> outcome
    removed: set[int]  # agents a reorg removed at some point (``agent.removed`` events)


async def snapshot(engine: AsyncEngine) -> Snapshot:
    async with engine.connect() as conn:
        agents = {r.token_id: r for r in await conn.execute(select(Agent))}
        entries = list(await conn.execute(select(CreditEntry)))
        generations = {r.id: r for r in await conn.execute(select(Generation))}
        mints = {r.generation_id: r for r in await conn.execute(select(Mint))}
        query = select(
            ChainEvent.block_hash, ChainEvent.tx_hash, ChainEvent.log_index, ChainEvent.name
        )
        events = {(r[0], r[1], r[2], r[3]) for r in await conn.execute(query)}
        voided = select(VoidedMint.request_key, VoidedMint.outcome)
        voids = {r[0]: r[1] for r in await conn.execute(voided)}
        gone = select(EventRecord.token_id).where(EventRecord.type == "agent.removed")
        removed = {r[0] for r in await conn.execute(gone)}
    return Snapshot(agents, entries, generations, mints, events, voids, removed)


def agents_match_chain(found: Findings, db: Snapshot, chain: ChainFacts) -> None:
    """Invariant 1."""
    for token_id in chain.purchases.keys() - db.agents.keys():
        found.expect(1, False, f"purchase of token {token_id} has no agent")
    for token_id in db.agents.keys() - chain.purchases.keys():
        found.expect(1, False, f"agent {token_id} has no purchase on the canonical chain")
    granted: Counter[int] = Counter()
    for e in db.entries:
        if e.kind in ("grant", "topup"):
            granted[e.token_id] += e.amount
    for token_id in chain.purchases.keys() & db.agents.keys():
        agent, purchase = db.agents[token_id], chain.purchases[token_id]
        want = chain.credits(token_id)
        found.expect(
            1, granted[token_id] == want,
            f"agent {token_id} was granted {granted[token_id]} credits, the chain says {want}",
        )  # fmt: skip
        found.expect(
            1, agent.package_type == purchase.package_type,
            f"agent {token_id} is of type {agent.package_type}, bought {purchase.package_type}",
        )  # fmt: skip
        owner = chain.owners[token_id]
        found.expect(
            1, agent.owner.lower() == owner.lower(),
            f"agent {token_id} is owned by {agent.owner}, ownerOf says {owner}",
        )  # fmt: skip


def _ledger(entries: Iterable[Any]) -> tuple[dict[int, list[int]], dict[str, Counter[str]]]:
    """Balances (total, used, reserved) per token and amounts per generation and kind."""
    balances: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    by_generation: dict[str, Counter[str]] = defaultdict(Counter)
    moves = {"grant": (1, 0, 0), "topup": (1, 0, 0), "adjust": (1, 0, 0), "reserve": (0, 0, 1),
             "commit": (0, 1, -1), "release": (0, 0, -1), "refund": (0, -1, 0)}  # fmt: skip
    for e in entries:
        for i, sign in enumerate(moves[e.kind]):
            balances[e.token_id][i] += sign * e.amount
        if e.generation_id is not None:
            by_generation[e.generation_id][e.kind] += e.amount
            by_generation[e.generation_id][e.kind + "#"] += 1
    return balances, by_generation


def credits_hold(found: Findings, db: Snapshot) -> None:
    """Invariant 2."""
    balances, by_generation = _ledger(db.entries)
    for token_id, a in db.agents.items():
        cached = [a.total_credits, a.used_credits, a.reserved_credits]
        found.expect(
            2, min(a.used_credits, a.reserved_credits, cached[0] - cached[1] - cached[2]) >= 0,
            f"agent {token_id} has negative credits {cached}",
        )  # fmt: skip
        found.expect(
            2, cached == balances[token_id],
            f"agent {token_id} caches {cached}, its ledger sums to {balances[token_id]}",
        )  # fmt: skip
    for gid, g in db.generations.items():
        moved = by_generation[gid]
        found.expect(
            2, moved["commit#"] <= 1, f"generation {gid} committed {moved['commit#']} times"
        )
        if g.status in FINAL:
            held = moved["reserve"] - moved["commit"] - moved["release"]
            found.expect(2, held == 0, f"{g.status} generation {gid} still holds {held} credits")
        if g.status == "succeeded":
            found.expect(
                2, moved["commit"] == g.credits_used,
                f"generation {gid} used {g.credits_used}, committed {moved['commit']}",
            )  # fmt: skip


def same_as_recompute(found: Findings, db: Snapshot, fresh: Snapshot) -> None:
    """Invariant 3: what a database indexed from scratch holds of the chain."""

    def agents(s: Snapshot) -> dict[int, tuple[str, int, int]]:
        return {t: (a.owner.lower(), a.package_type, a.total_credits) for t, a in s.agents.items()}

    def requested(s: Snapshot) -> set[int]:
        return {g.chain_request_id for g in s.generations.values() if g.chain_request_id}

    live, again = agents(db), agents(fresh)
    for token_id in live.keys() | again.keys():
        found.expect(
            3, live.get(token_id) == again.get(token_id),
            f"agent {token_id}: {live.get(token_id)} here, {again.get(token_id)} recomputed",
        )  # fmt: skip
    for kind, here, there in (
        ("chain events", db.events, fresh.events),
        ("chain-requested generations", requested(db), requested(fresh)),
    ):
        found.expect(
            3, here == there,
            f"{kind} differ from the recompute: {len(here - there)} only here "
            f"{sorted(here - there)[:3]}, {len(there - here)} only recomputed "
            f"{sorted(there - here)[:3]}",
        )  # fmt: skip


def minted_once(found: Findings, db: Snapshot, chain: ChainFacts) -> None:
    """Invariant 4."""
    keys = {request_key(gid): gid for gid in db.generations}
    for gid, g in db.generations.items():
        if g.status != "succeeded":
            continue
        key = request_key(gid)
        found.expect(
            4, chain.minted[key] == 1, f"generation {gid} minted {chain.minted[key]} times"
        )
        mint = db.mints.get(gid)
        state = None if mint is None else (mint.status, mint.nft_token_id)
        want = ("confirmed", chain.minted_nft.get(key))
        found.expect(4, state == want, f"generation {gid}: mint row {state}, chain {want}")
    for key, count in chain.minted.items():
        found.expect(4, count == 1, f"requestKey {key} minted {count} times")
        owner = keys.get(key)
        ok = owner is not None and db.generations[owner].status == "succeeded"
        ok = ok or db.voids.get(key) == "minted"
        found.expect(4, ok, f"requestKey {key} minted, but no succeeded generation has it")
    for key, outcome in db.voids.items():
        want = {"minted": 1, "cancelled": 0}.get(outcome or "")
        found.expect(4, want is not None, f"voided mint {key} is still open")
        if want is not None:
            seen = chain.minted[key]
            found.expect(4, seen == want, f"voided mint {key} {outcome}, minted {seen} times")


def accepted_kept(
    found: Findings, db: Snapshot, chain: ChainFacts, accepted: dict[str, int]
) -> None:
    """Invariant 7: ``accepted`` maps each 202'd generation id to its agent."""
    for gid, token_id in accepted.items():
        row = db.generations.get(gid)
        if row is None:
            # a reorg took its agent away (it may be back since: bought again on the new branch)
            gone = token_id not in chain.purchases or token_id in db.removed
            found.expect(7, gone, f"accepted generation {gid} of agent {token_id} is lost")
            continue
        found.expect(7, row.status in FINAL, f"accepted generation {gid} is still {row.status}")
    for gid, row in db.generations.items():  # the chain's requests too: none left behind
        if gid not in accepted:
            found.expect(7, row.status in FINAL, f"{row.source} generation {gid} is {row.status}")


def check(
    db: Snapshot, chain: ChainFacts, accepted: dict[str, int], fresh: Snapshot | None
) -> Findings:
    found = Findings()
    agents_match_chain(found, db, chain)
    credits_hold(found, db)
    if fresh is not None:
        same_as_recompute(found, db, fresh)
    minted_once(found, db, chain)
    accepted_kept(found, db, chain, accepted)
    return found
