"""Usage analytics over a time window, per agent and per package type.

Every figure is a SQL aggregate (``GROUP BY`` the agent or its package type), so the
database does the counting whatever the number of rows; the same queries run on SQLite
and PostgreSQL. The window is half-open, ``[from, to)``, and each row counts by its
``created_at``: ledger entries, generation requests (with their ``cost_usd``), feedback
and messages. Credits: ``granted`` sums grants, top-ups and adjustments; ``reserved``,
``used`` (committed), ``released`` and ``refunded`` sum those entries.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, distinct, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.errors import BadWindow, UnknownAgent
from inftd.agents.ledger import TOTAL_KINDS
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.agents.views import iso
from inftd.store.models import Agent, AgentMessage, CreditEntry, Generation, LearningEntry

DEFAULT_WINDOW = timedelta(days=7)
MAX_WINDOW = timedelta(days=92)  # about a quarter; longer ranges belong to a data warehouse
MAX_UNIX = 253402300799  # 9999-12-31T23:59:59Z, the last second datetime can hold
CREDIT_FIGURES = {
    "granted": TOTAL_KINDS,
    "reserved": ("reserve",),
    "used": ("commit",),
    "released": ("release",),
    "refunded": ("refund",),
}

Key = int  # a token id or a package type, by what the figures are grouped


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    def as_json(self) -> dict[str, Any]:
        return {"from": iso(self.start), "to": iso(self.end)}


def parse_time(raw: str, name: str) -> datetime:
    """Unix seconds or ISO 8601 (UTC unless it says otherwise); raises ``BadWindow``."""
    text = raw.strip()
    try:
        if text.isascii() and text.lstrip("-").replace(".", "", 1).isdigit():
            seconds = float(text)
            if not 0 <= seconds <= MAX_UNIX:
                raise ValueError
            return datetime.fromtimestamp(seconds, UTC)
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise BadWindow(f"{name} must be unix seconds or ISO 8601, got {raw!r:.60}") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise BadWindow(f"{name} is out of range: {raw!r:.60}") from None


def window_of(start: str | None, end: str | None, now: datetime) -> Window:
    """The window from the query's ``from`` and ``to``: ``to`` defaults to now, ``from`` to
    ``DEFAULT_WINDOW`` before ``to``; at most ``MAX_WINDOW`` long. Raises ``BadWindow``."""
    stop = parse_time(end, "to") if end is not None else now
    try:
        begin = parse_time(start, "from") if start is not None else stop - DEFAULT_WINDOW
    except OverflowError:  # a "to" in the first week of year 1
        raise BadWindow("from would be before year 1") from None
    if begin >= stop:
        raise BadWindow("from must be before to")
    if stop - begin > MAX_WINDOW:
        raise BadWindow(f"the window is longer than {MAX_WINDOW.days} days")
    return Window(begin, stop)


def _in(column: Any, window: Window) -> ColumnElement[bool]:
    within: ColumnElement[bool] = (column >= window.start) & (column < window.end)
    return within


def _sum_kinds(kinds: tuple[str, ...]) -> Any:
    return func.coalesce(
        func.sum(case((CreditEntry.kind.in_(kinds), CreditEntry.amount), else_=0)), 0
    )


async def _credits(
    conn: AsyncConnection, key: Any, where: Any, window: Window
) -> dict[Key, dict[str, int]]:
    query = (
        select(key, *(_sum_kinds(kinds) for kinds in CREDIT_FIGURES.values()))
        .select_from(CreditEntry)
        .join(Agent, Agent.token_id == CreditEntry.token_id)
        .where(where, _in(CreditEntry.created_at, window))
        .group_by(key)
    )
    return {
        row[0]: dict(zip(CREDIT_FIGURES, (int(v) for v in row[1:]), strict=True))
        for row in await conn.execute(query)
    }


async def _requests(
    conn: AsyncConnection, key: Any, where: Any, window: Window
) -> dict[Key, dict[str, Any]]:
    query = (
        select(
            key,
            Generation.kind,
            Generation.status,
            func.count(),
            func.coalesce(func.sum(Generation.cost_usd), 0),
        )
        .select_from(Generation)
        .join(Agent, Agent.token_id == Generation.token_id)
        .where(where, _in(Generation.created_at, window))
        .group_by(key, Generation.kind, Generation.status)
    )
    found: dict[Key, dict[str, Any]] = {}
    for group, kind, status, count, cost in await conn.execute(query):
        figures = found.setdefault(group, _no_requests())
        figures["total"] += count
        figures["byKind"][kind] = figures["byKind"].get(kind, 0) + count
        figures["byStatus"][status] = figures["byStatus"].get(status, 0) + count
        figures["costUsd"] += float(cost)
    return found


def _no_requests() -> dict[str, Any]:
    return {"total": 0, "byKind": {}, "byStatus": {}, "costUsd": 0.0}


async def _feedback(
    conn: AsyncConnection, key: Any, where: Any, window: Window
) -> dict[Key, dict[str, Any]]:
    query = (
        select(key, func.count(), func.avg(LearningEntry.rating))
        .select_from(LearningEntry)
        .join(Agent, Agent.token_id == LearningEntry.token_id)
        .where(where, _in(LearningEntry.created_at, window))
        .group_by(key)
    )
    return {
        group: {"count": count, "meanRating": float(mean) if mean is not None else None}
        for group, count, mean in await conn.execute(query)
    }


async def _messages(
    conn: AsyncConnection, key: Any, where: Any, window: Window
) -> dict[Key, dict[str, int]]:
    found: dict[Key, dict[str, int]] = defaultdict(lambda: {"sent": 0, "received": 0})
    for name, side in (
        ("sent", AgentMessage.from_token_id),
        ("received", AgentMessage.to_token_id),
    ):
        query = (
            select(key, func.count())
            .select_from(AgentMessage)
            .join(Agent, Agent.token_id == side)
            .where(where, _in(AgentMessage.created_at, window))
            .group_by(key)
        )
        for group, count in await conn.execute(query):
            found[group][name] = count
    return dict(found)


async def _figures(
    conn: AsyncConnection, key: Any, where: Any, window: Window
) -> dict[Key, dict[str, Any]]:
    """Every figure of every group that has any, keyed by the group."""
    credits = await _credits(conn, key, where, window)
    requests = await _requests(conn, key, where, window)
    feedback = await _feedback(conn, key, where, window)
    messages = await _messages(conn, key, where, window)
    groups = set(credits) | set(requests) | set(feedback) | set(messages)
    return {group: _assemble(group, credits, requests, feedback, messages) for group in groups}


def _assemble(
    group: Key,
    credits: dict[Key, dict[str, int]],
    requests: dict[Key, dict[str, Any]],
    feedback: dict[Key, dict[str, Any]],
    messages: dict[Key, dict[str, int]],
) -> dict[str, Any]:
    asked = dict(requests.get(group, _no_requests()))
    cost = asked.pop("costUsd")
    return {
        "credits": credits.get(group, dict.fromkeys(CREDIT_FIGURES, 0)),
        "requests": asked,
        "feedback": feedback.get(group, {"count": 0, "meanRating": None}),
        "messages": messages.get(group, {"sent": 0, "received": 0}),
        "costUsd": _round_cost(cost),
    }


def _round_cost(cost: float) -> float:
    """Sums of floats differ in the last bits between databases; a micro-dollar is enough."""
    return round(cost, 6) if math.isfinite(cost) else 0.0


async def agent_analytics(conn: AsyncConnection, token_id: int, window: Window) -> dict[str, Any]:
    """The figures of one agent over ``window``; raises ``UnknownAgent``."""
    package_type = None
    if 0 <= token_id <= MAX_STORED_TOKEN_ID:
        package_type = await conn.scalar(
            select(Agent.package_type).where(Agent.token_id == token_id)
        )
    if package_type is None:
        raise UnknownAgent(token_id)
    figures = await _figures(conn, Agent.token_id, Agent.token_id == token_id, window)
    empty = _assemble(token_id, {}, {}, {}, {})
    return {
        "packageTokenId": token_id,
        "packageType": package_type,
        **window.as_json(),
        **figures.get(token_id, empty),
    }


async def _agent_counts(conn: AsyncConnection, window: Window) -> dict[Key, tuple[int, int]]:
    """Per package type: agents created before the window's end, and those of them that
    requested a generation in the window."""
    existing = await conn.execute(
        select(Agent.package_type, func.count())
        .where(Agent.created_at < window.end)
        .group_by(Agent.package_type)
    )
    active = await conn.execute(
        select(Agent.package_type, func.count(distinct(Generation.token_id)))
        .select_from(Generation)
        .join(Agent, Agent.token_id == Generation.token_id)
        .where(_in(Generation.created_at, window))
        .group_by(Agent.package_type)
    )
    actives: dict[Key, int] = {group: count for group, count in active}
    return {group: (count, actives.get(group, 0)) for group, count in existing}


async def package_analytics(conn: AsyncConnection, window: Window) -> dict[str, Any]:
    """The figures of every package type that has agents or activity, over ``window``."""
    figures = await _figures(conn, Agent.package_type, true(), window)
    counts = await _agent_counts(conn, window)
    packages = [
        {
            "packageType": group,
            "agents": counts.get(group, (0, 0))[0],
            "activeAgents": counts.get(group, (0, 0))[1],
            **figures.get(group, _assemble(group, {}, {}, {}, {})),
        }
        for group in sorted(set(figures) | set(counts))
    ]
    return {**window.as_json(), "packages": packages}
