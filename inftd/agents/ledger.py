"""The credits ledger. Balances derive from its entries; the agent row caches them.

How each kind moves the three balances (available = total - used - reserved):

    grant, topup, adjust   total    += amount
    reserve                reserved += amount
    commit                 reserved -= amount, used += amount
    release                reserved -= amount
    refund                 used     -= amount

Entries are only ever appended; ``inftd.agents.credits`` writes them under the agent's lock
and moves the cached columns in the same statement group, so the two never disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Update, bindparam, case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.errors import UnknownAgent
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.store.models import Agent, CreditEntry, utcnow

TOTAL_KINDS = ("grant", "topup", "adjust")
KINDS = (*TOTAL_KINDS, "reserve", "commit", "release", "refund")


@dataclass(frozen=True)
class Balances:
    total: int
    used: int
    reserved: int

    @property
    def available(self) -> int:
        return self.total - self.used - self.reserved

    def __add__(self, other: Balances) -> Balances:
        return Balances(
            self.total + other.total, self.used + other.used, self.reserved + other.reserved
        )

    def as_json(self) -> dict[str, int]:
        """With the seed's field names, for ``credits.changed`` (the API's answers are
        ``server.api.credits``'s models)."""
        return {
            "totalCredits": self.total,
            "usedCredits": self.used,
            "reservedCredits": self.reserved,
            "availableCredits": self.available,
        }


NO_CHANGE = Balances(0, 0, 0)
_EFFECT = {  # per credit of the entry: (total, used, reserved)
    **{kind: (1, 0, 0) for kind in TOTAL_KINDS},
    "reserve": (0, 0, 1),
    "commit": (0, 1, -1),
    "release": (0, 0, -1),
    "refund": (0, -1, 0),
}


def effect(kind: str, amount: int) -> Balances:
    """How an entry moves the balances (a change, not balances)."""
    total, used, reserved = _EFFECT[kind]
    return Balances(total * amount, used * amount, reserved * amount)


@dataclass(frozen=True)
class LedgerEntry:
    id: int
    token_id: int
    kind: str
    amount: int
    key: str
    generation_id: str | None
    note: str | None
    created_at: datetime

    @classmethod
    def from_row(cls, row: Any) -> LedgerEntry:
        return cls(
            row.id,
            row.token_id,
            row.kind,
            row.amount,
            row.idempotency_key,
            row.generation_id,
            row.note,
            row.created_at,
        )


def grant_entry(
    token_id: int, amount: int, kind: str, key: str, chain_event_id: int | None = None
) -> dict[str, Any]:
    """A ledger row for a grant-like entry, for bulk inserts by the caller."""
    assert kind in TOTAL_KINDS, kind
    return {
        "token_id": token_id,
        "kind": kind,
        "amount": amount,
        "idempotency_key": key,
        "chain_event_id": chain_event_id,
    }


def _sum(kinds: tuple[str, ...], sign: int = 1) -> Any:
    return func.coalesce(
        func.sum(case((CreditEntry.kind.in_(kinds), sign * CreditEntry.amount), else_=0)), 0
    )


async def ledger_balances(conn: AsyncConnection, token_id: int) -> Balances:
    """The balances as the ledger says, whatever the cached columns hold."""
    row = (
        await conn.execute(
            select(
                _sum(TOTAL_KINDS),
                _sum(("commit",)) - _sum(("refund",)),
                _sum(("reserve",)) - _sum(("commit", "release")),
            ).where(CreditEntry.token_id == token_id)
        )
    ).one()
    return Balances(total=int(row[0]), used=int(row[1]), reserved=int(row[2]))


async def refresh_balances(conn: AsyncConnection, token_id: int) -> Balances:
    """Recompute the cached balances from the ledger (after a reorg removed entries).

    If the ledger lost a grant whose credits were already spent, an ``adjust`` entry makes
    up the deficit, so available credits never go negative; it is recorded, never hidden.
    """
    balances = await ledger_balances(conn, token_id)
    deficit = -balances.available
    if deficit > 0:
        key = f"reorg-deficit:{token_id}:{balances.total}:{balances.used}:{balances.reserved}"
        await conn.execute(
            insert(CreditEntry),
            {
                **grant_entry(token_id, deficit, "adjust", key),
                "note": "reorg removed spent credits",
            },
        )
        balances = Balances(balances.total + deficit, balances.used, balances.reserved)
    await conn.execute(
        update(Agent)
        .where(Agent.token_id == token_id)
        .values(
            total_credits=balances.total,
            used_credits=balances.used,
            reserved_credits=balances.reserved,
        )
    )
    return balances


async def cached_balances(conn: AsyncConnection, token_id: int) -> Balances:
    """The balances cached on the agent row (equal to the ledger's; a test checks it)."""
    if not 0 <= token_id <= MAX_STORED_TOKEN_ID:
        raise UnknownAgent(token_id)
    row = (
        await conn.execute(
            select(Agent.total_credits, Agent.used_credits, Agent.reserved_credits).where(
                Agent.token_id == token_id
            )
        )
    ).first()
    if row is None:
        raise UnknownAgent(token_id)
    return Balances(int(row[0]), int(row[1]), int(row[2]))


# The statements of every credit change, built once (building one cost more than running it).
_WITH_KEYS = (
    select(CreditEntry)
    .where(CreditEntry.idempotency_key.in_(bindparam("keys", expanding=True)))
    .order_by(CreditEntry.id)
)
_APPEND = insert(CreditEntry).returning(CreditEntry)


def _moved() -> Update:
    """Add the bound change to the cached balances where none goes below zero."""
    total = Agent.total_credits + bindparam("d_total")
    used = Agent.used_credits + bindparam("d_used")
    reserved = Agent.reserved_credits + bindparam("d_reserved")
    return (
        update(Agent)
        .where(
            Agent.token_id == bindparam("b_token"),
            used >= 0,
            reserved >= 0,
            total - used - reserved >= 0,
        )
        .values(
            total_credits=total,
            used_credits=used,
            reserved_credits=reserved,
            last_activity=bindparam("b_now"),
        )
        .returning(Agent.total_credits, Agent.used_credits, Agent.reserved_credits)
    )


_MOVE = _moved()


async def entries_with_keys(conn: AsyncConnection, keys: Sequence[str]) -> list[LedgerEntry]:
    """The entries stored under any of ``keys``, oldest first."""
    rows = await conn.execute(_WITH_KEYS, {"keys": list(keys)})
    return [LedgerEntry.from_row(r) for r in rows]


@dataclass(frozen=True)
class NewEntry:
    kind: str
    amount: int  # positive; only an ``adjust`` may be negative (it lowers the total)
    key: str
    generation_id: str | None = None
    note: str | None = None


async def append_entries(
    conn: AsyncConnection, token_id: int, entries: Sequence[NewEntry]
) -> list[LedgerEntry]:
    """Append entries in one statement (the caller holds the agent and moves the cache with
    ``move_cached``); the stored entries, oldest first."""
    for e in entries:
        assert e.kind in KINDS, e.kind
        assert e.amount > 0 or (e.kind == "adjust" and e.amount < 0), e.amount
    rows = await conn.execute(
        _APPEND,
        [
            {
                "token_id": token_id,
                "kind": e.kind,
                "amount": e.amount,
                "idempotency_key": e.key,
                "generation_id": e.generation_id,
                "note": e.note,
            }
            for e in entries
        ],
    )
    return sorted((LedgerEntry.from_row(r) for r in rows), key=lambda e: e.id)


async def move_cached(conn: AsyncConnection, token_id: int, change: Balances) -> Balances | None:
    """Add ``change`` to the cached balances unless one would go negative; the new balances.

    The condition is part of the UPDATE, so even a writer that skipped the agent's lock
    could not take credits that are not there: it gets None and must roll back.
    """
    bound = {
        "b_token": token_id,
        "d_total": change.total,
        "d_used": change.used,
        "d_reserved": change.reserved,
        "b_now": utcnow(),
    }
    row = (await conn.execute(_MOVE, bound)).first()
    return None if row is None else Balances(int(row[0]), int(row[1]), int(row[2]))


async def ledger_page(
    conn: AsyncConnection, token_id: int, limit: int, before: int | None = None
) -> tuple[list[LedgerEntry], int | None]:
    """Up to ``limit`` entries older than entry ``before``, newest first, and the next cursor."""
    query = select(CreditEntry).where(CreditEntry.token_id == token_id)
    if before is not None:
        query = query.where(CreditEntry.id < before)
    rows = (await conn.execute(query.order_by(CreditEntry.id.desc()).limit(limit + 1))).all()
    entries = [LedgerEntry.from_row(r) for r in rows[:limit]]
    return entries, entries[-1].id if len(rows) > limit else None
