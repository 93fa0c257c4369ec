"""Spend on AI providers over a time window, from the ``provider_calls`` ledger.

Per provider and per agent: calls (failed ones and cache hits included), failures, cache
hits, tokens and images, USD spent, and two savings:

- ``cacheSavedUsd``: what the answers served from the cache had cost when they were made;
- ``routingSavedUsd``: for answered calls, what the same work (the same tokens, or the same
  image) would have cost on the dearest capable candidate, less what it cost. A router that
  always took the dearest candidate would save nothing.

``credits`` are the credits charged for succeeded generations (``generations.credits_used``)
by the provider that made them and by agent. Every figure is a SQL aggregate over the
half-open window ``[from, to)`` by ``created_at``; the same queries run on SQLite and
PostgreSQL. At most ``MAX_AGENTS`` agents are listed, the biggest spenders first.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import ColumnElement, case, desc, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.analytics import Window
from inftd.store.models import Generation, ProviderCall

MAX_AGENTS = 100  # agents listed; agentsTotal counts them all
SUCCEEDED = "succeeded"

Row = dict[str, Any]


def _within(column: Any, window: Window) -> ColumnElement[bool]:
    inside: ColumnElement[bool] = (column >= window.start) & (column < window.end)
    return inside


def _usd(value: Any) -> float:
    """Sums of floats differ in the last bits between databases; a micro-dollar is enough."""
    number = float(value or 0)
    return round(number, 6) if math.isfinite(number) else 0.0


def _count_if(condition: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _sum(column: Any) -> Any:
    return func.coalesce(func.sum(column), 0)


def _figures() -> list[Any]:
    """The aggregate columns both groupings share, in the order ``_money`` reads them."""
    call = ProviderCall
    answered = (call.outcome == "ok") & (call.cached.is_(False))
    return [
        func.count(),
        _count_if(call.outcome != "ok"),
        _count_if(call.cached.is_(True)),
        _sum(call.cost_usd),
        _sum(call.cache_saved_usd),
        _sum(case((answered, call.baseline_usd - call.cost_usd), else_=0.0)),
    ]


def _money(values: Any) -> Row:
    calls, failures, hits, cost, cache_saved, routing_saved = values
    return {
        "calls": int(calls),
        "failures": int(failures),
        "cacheHits": int(hits),
        "costUsd": _usd(cost),
        "cacheSavedUsd": _usd(cache_saved),
        "routingSavedUsd": _usd(routing_saved),
    }


async def _providers(conn: AsyncConnection, window: Window) -> dict[str, Row]:
    call = ProviderCall
    answered = (call.outcome == "ok") & (call.cached.is_(False))
    query = (
        select(
            call.provider,
            *_figures(),
            _sum(call.input_tokens),
            _sum(call.output_tokens),
            _sum(call.images),
            func.avg(case((answered, call.latency_ms), else_=None)),
        )
        .where(_within(call.created_at, window))
        .group_by(call.provider)
    )
    found: dict[str, Row] = {}
    for row in await conn.execute(query):
        inputs, outputs, images, latency = row[7:]
        found[row[0]] = {
            **_money(row[1:7]),
            "inputTokens": int(inputs),
            "outputTokens": int(outputs),
            "images": int(images),
            "meanLatencyMs": None if latency is None else round(float(latency), 1),
        }
    return found


async def _agents(conn: AsyncConnection, window: Window) -> tuple[dict[int, Row], int]:
    call = ProviderCall
    where = (_within(call.created_at, window), call.token_id.is_not(None))
    query = (
        select(call.token_id, *_figures())
        .where(*where)
        .group_by(call.token_id)
        .order_by(desc(_sum(call.cost_usd)), call.token_id)
        .limit(MAX_AGENTS)
    )
    found = {int(row[0]): _money(row[1:]) for row in await conn.execute(query)}
    total = await conn.scalar(select(func.count(distinct(call.token_id))).where(*where))
    return found, int(total or 0)


async def _credits(conn: AsyncConnection, window: Window, key: Any) -> dict[Any, int]:
    query = (
        select(key, _sum(Generation.credits_used))
        .where(
            _within(Generation.created_at, window),
            Generation.status == SUCCEEDED,
            key.is_not(None),
        )
        .group_by(key)
    )
    return {group: int(credits) for group, credits in await conn.execute(query)}


def _empty() -> Row:
    return _money((0, 0, 0, 0.0, 0.0, 0.0))


def _provider_rows(calls: dict[str, Row], credits: dict[Any, int]) -> list[Row]:
    rows = []
    for name in set(calls) | set(credits):
        figures = calls.get(name) or {
            **_empty(),
            "inputTokens": 0,
            "outputTokens": 0,
            "images": 0,
            "meanLatencyMs": None,
        }
        rows.append({"provider": name, **figures, "credits": credits.get(name, 0)})
    return sorted(rows, key=lambda r: (-r["costUsd"], r["provider"]))


def _totals(rows: list[Row]) -> Row:
    keys = ("calls", "failures", "cacheHits", "credits")
    totals: Row = {key: sum(r[key] for r in rows) for key in keys}
    for key in ("costUsd", "cacheSavedUsd", "routingSavedUsd"):
        totals[key] = _usd(sum(r[key] for r in rows))
    return totals


async def provider_spend(conn: AsyncConnection, window: Window) -> Row:
    """Spend by provider and by agent over ``window`` (see the module docstring)."""
    providers = _provider_rows(
        await _providers(conn, window), await _credits(conn, window, Generation.provider)
    )
    agents, agents_total = await _agents(conn, window)
    agent_credits = await _credits(conn, window, Generation.token_id)
    return {
        **window.as_json(),
        "totals": _totals(providers),
        "providers": providers,
        "agents": [
            {"packageTokenId": token, **figures, "credits": agent_credits.get(token, 0)}
            for token, figures in agents.items()
        ],
        "agentsTotal": agents_total,
    }
