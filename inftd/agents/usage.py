"""Usage limits, checked before a generation reserves its credits.

``check_usage`` runs inside the transaction that holds the agent (``AgentWriter.write``),
the same one that then reserves and queues the job, so two requests cannot both pass a
limit that only one of them fits under.

    max_prompt_chars      characters in the prompt
    max_concurrent_jobs   the agent's generations queued or running, this one included
    daily_credit_cap      credits of reservations made this UTC day that are not released
                          (reserved or spent), this one included

A reservation counts against the day it was made in, whenever it is settled; refunds do
not give the day's allowance back (they correct a spend, they do not undo the request).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import String, cast, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from inftd.agents.credits import RESERVATION, SETTLEMENT, stored_key
from inftd.agents.errors import LimitExceeded, UnpricedGeneration
from inftd.agents.limits import UsageLimits
from inftd.store.models import CreditEntry, Generation

ACTIVE_STATUSES = ("queued", "running")  # generations that count as concurrent jobs
# A reservation's stored key and its settlement's differ only in this prefix.
RESERVE_PREFIX = stored_key(RESERVATION, 0, "").removesuffix("0:")
SETTLE_PREFIX = stored_key(SETTLEMENT, 0, "").removesuffix("0:")


def price_of(limits: UsageLimits, kind: str, quality: str) -> int:
    """Credits one generation of ``kind`` and ``quality`` costs; ``UnpricedGeneration``."""
    price = limits.credits.get(kind, {}).get(quality)
    if price is None:
        raise UnpricedGeneration(kind, quality)
    return price


async def active_jobs(conn: AsyncConnection, token_id: int) -> int:
    """The agent's generations queued or running."""
    count = await conn.scalar(
        select(func.count())
        .select_from(Generation)
        .where(Generation.token_id == token_id, Generation.status.in_(ACTIVE_STATUSES))
    )
    return int(count or 0)


def _day(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day holding ``now``, as [start, end)."""
    start = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    return start, start + timedelta(days=1)


async def credits_today(conn: AsyncConnection, token_id: int, now: datetime) -> int:
    """Credits of the agent's reservations made this UTC day, less what was released of them."""
    reservation, settlement = aliased(CreditEntry), aliased(CreditEntry)
    settle_key = literal(SETTLE_PREFIX, String) + func.substr(
        reservation.idempotency_key, len(RESERVE_PREFIX) + 1
    )
    released = (
        select(func.coalesce(func.sum(settlement.amount), 0))
        .where(
            settlement.token_id == token_id,
            settlement.kind == "release",
            or_(
                settlement.idempotency_key == settle_key,
                settlement.idempotency_key == settle_key + cast(literal(":rest"), String),
            ),
        )
        .scalar_subquery()
    )
    start, end = _day(now)
    kept = (
        select((reservation.amount - released).label("kept"))
        .where(
            reservation.token_id == token_id,
            reservation.kind == "reserve",
            reservation.created_at >= start,
            reservation.created_at < end,
        )
        .subquery()
    )
    return int(await conn.scalar(select(func.coalesce(func.sum(kept.c.kept), 0))) or 0)


def _check(name: str, limit: int, value: int) -> None:
    if value > limit:
        raise LimitExceeded(name, limit, value)


async def check_usage(
    conn: AsyncConnection,
    limits: UsageLimits,
    token_id: int,
    *,
    kind: str,
    quality: str,
    prompt: str,
    now: datetime | None = None,
) -> int:
    """The price of the generation if it is within every limit; ``LimitExceeded`` naming the
    first it would exceed, or ``UnpricedGeneration``. Call it before reserving the price."""
    price = price_of(limits, kind, quality)
    _check("max_prompt_chars", limits.max_prompt_chars, len(prompt))
    _check("max_concurrent_jobs", limits.max_concurrent_jobs, await active_jobs(conn, token_id) + 1)
    today = await credits_today(conn, token_id, now or datetime.now(UTC))
    _check("daily_credit_cap", limits.daily_credit_cap, today + price)
    return price
