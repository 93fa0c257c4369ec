"""The credits ledger. Balances derive from its entries; the agent row caches them.

How each kind moves the three balances (available = total - used - reserved):

    grant, topup, adjust   total    += amount
    reserve                reserved += amount
    commit                 reserved -= amount, used += amount
    release                reserved -= amount
    refund                 used     -= amount
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.store.models import Agent, CreditEntry

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
