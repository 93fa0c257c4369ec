"""The queue: rows of ``generations`` move ``queued → running → succeeded | failed |
cancelled``.

Creating (the API, the WebSocket): in the agent's writer transaction the request is checked
against the package's limits, its price reserved (the reservation's key is the generation
id) and the row inserted, with ``generation.queued``. An ``Idempotency-Key`` names one
request per agent: the same key again returns the first generation, with another request
it is refused. On-chain requests are inserted ``queued`` by the indexer with nothing
reserved: the worker reserves when it takes them (``worker``).

Claiming: a worker takes due queued jobs, best priority first (the package tier's; for
on-chain requests read from the agent's package type), then oldest, and marks them
``running`` under a lease (``lease_owner``, ``lease_expires_at``) that it renews while the
job runs. On PostgreSQL candidates are read ``FOR UPDATE SKIP LOCKED``, so workers in
several processes never take one job twice, and each agent is taken by one claim at a time
(a transaction-scoped advisory lock), so ``per_agent_concurrency`` holds across processes.
The UPDATE itself only moves rows still ``queued``, on SQLite too.

Leaving ``running``: every transition out of ``running`` (success, failure, retry, cancel,
the reaper's) reads the row and writes it in the agent's writer transaction, so they are
ordered with each other; a worker whose lease was taken over finds the row no longer its
own and writes nothing. Credits are settled under the generation id's key, once, whatever
path a job takes.
"""

from __future__ import annotations

import functools
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    bindparam,
    case,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.agents.collaboration import can_borrow
from inftd.agents.credits import release, reserve
from inftd.agents.errors import UnknownAgent, UnknownGeneration
from inftd.agents.events import NewEvent, record_events
from inftd.agents.usage import check_usage
from inftd.agents.views import iso
from inftd.agents.writer import AgentWriter
from inftd.daemon.config import GenerationSettings, Settings
from inftd.daemon.generation.errors import IdempotencyConflict, NoCollaboration, NotCancellable
from inftd.daemon.generation.mints import mint_of
from inftd.daemon.generation.requests import GenerationRequest
from inftd.store.models import Agent, Generation, table_of

QUEUED, RUNNING = "queued", "running"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
FINISHED = (SUCCEEDED, FAILED, CANCELLED)
OVERFETCH = 4  # candidates read per free slot: some belong to agents at their limit
CLAIM_LOCK_CLASS = 0x1F7D  # advisory lock class of "an agent being claimed for"
INT4 = 2**31 - 1  # advisory lock object ids are int4: token ids wrap (a clash only skips)
REAP_BATCH = 100  # expired leases handled per reaper pass


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; they are UTC here."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def event(kind: str, token_id: int, payload: dict[str, Any], private: bool = False) -> NewEvent:
    return NewEvent(f"generation.{kind}", token_id, payload, private)


# -- reading ------------------------------------------------------------------------------


def generation_json(
    row: Any, mint: dict[str, Any] | None = None, *, detail: bool = True
) -> dict[str, Any]:
    """A generation as the API shows it (to its owner: the prompt is theirs)."""
    shown = {
        "id": row.id,
        "packageTokenId": row.token_id,
        "kind": row.kind,
        "prompt": row.prompt,
        "options": dict(row.options or {}),
        "source": row.source,
        "status": row.status,
        "attempts": row.attempts,
        "creditsReserved": row.credits_reserved,
        "creditsUsed": row.credits_used,
        "provider": row.provider,
        "model": row.model,
        "costUsd": row.cost_usd,
        "contentUri": row.content_uri,
        "contentHash": row.content_hash,
        "contentType": row.content_type,
        "error": row.error,
        "cancelRequested": bool(row.cancel_requested),
        "collaboratorTokenId": row.collaborator_token_id,
        "chainRequestId": row.chain_request_id,
        "createdAt": iso(row.created_at),
        "startedAt": iso(row.started_at),
        "finishedAt": iso(row.finished_at),
        "mint": mint,
    }
    if detail:
        shown["detail"] = row.detail
    return shown


async def read_generation(conn: AsyncConnection, generation_id: str) -> Any:
    """The row, or None."""
    return (await conn.execute(select(Generation).where(Generation.id == generation_id))).first()


async def generation_view(conn: AsyncConnection, generation_id: str) -> dict[str, Any] | None:
    """The generation with its mint, or None."""
    row = await read_generation(conn, generation_id)
    return None if row is None else generation_json(row, await mint_of(conn, generation_id))


async def generation_unminted(conn: AsyncConnection, generation_id: str) -> dict[str, Any] | None:
    """The generation as ``generation_view`` shows it but for its mint (None), or None.

    Each change of a generation's row records an event of its agent, so this can be kept
    with the agent's live copy; its mint cannot: the relayer moves a mint through states
    (signed, fee-bumped, mined) that it records no event for."""
    row = await read_generation(conn, generation_id)
    return None if row is None else generation_json(row)


async def with_mint(conn: AsyncConnection, view: dict[str, Any]) -> dict[str, Any]:
    """``view`` (of ``generation_unminted``) with its mint: only a succeeded one has any."""
    if view["status"] != SUCCEEDED:
        return view
    return {**view, "mint": await mint_of(conn, view["id"])}


async def list_generations(
    conn: AsyncConnection, token_id: int, limit: int, before: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """A page of the agent's generations, newest first, older than ``before`` (an id);
    and the ``before`` of the next page (None on the last)."""
    query = select(Generation).where(Generation.token_id == token_id)
    if before is not None:
        cursor = (await conn.execute(_cursor(token_id, before))).first()
        if cursor is None:
            return [], None
        query = query.where(
            (Generation.created_at < cursor.created_at)
            | ((Generation.created_at == cursor.created_at) & (Generation.id < cursor.id))
        )
    order = (Generation.created_at.desc(), Generation.id.desc())
    rows = (await conn.execute(query.order_by(*order).limit(limit + 1))).all()
    page = [generation_json(r, detail=False) for r in rows[:limit]]
    return page, page[-1]["id"] if len(rows) > limit else None


def _cursor(token_id: int, generation_id: str) -> Any:
    return select(Generation.created_at, Generation.id).where(
        Generation.token_id == token_id, Generation.id == generation_id
    )


# -- creating -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    generation: dict[str, Any]
    replayed: bool  # the key named an earlier generation: this is it, nothing was written


async def create(
    writer: AgentWriter,
    settings: Settings,
    token_id: int,
    request: GenerationRequest,
    key: str | None,
) -> Created:
    """Check, reserve and queue ``request`` for the agent, in its writer transaction.

    Raises ``UnknownAgent``, ``IdempotencyConflict``, ``NoCollaboration``, the usage
    refusals (``LimitExceeded``, ``UnpricedGeneration``) and ``InsufficientCredits``;
    then nothing was written."""
    async with writer.write(token_id) as (conn, agent):
        if key is not None and (earlier := await _by_key(conn, token_id, key)) is not None:
            if not request.same_as(earlier):
                raise IdempotencyConflict(token_id, earlier.id)
            return Created(generation_json(earlier, await mint_of(conn, earlier.id)), True)
        if request.collaborator is not None:
            await _check_collaborator(conn, request.collaborator, token_id)
        limits = settings.limits_of(agent.package_type)
        price = await check_usage(
            conn, limits, token_id, kind=request.kind, quality=request.quality,
            prompt=request.prompt,
        )  # fmt: skip
        generation_id = str(uuid.uuid4())
        await reserve(conn, agent, price, generation_id, generation_id)
        row = _new_row(generation_id, token_id, request, key, price, limits.priority)
        await conn.execute(insert(Generation).values(**row))
        stored = await read_generation(conn, generation_id)
        await record_events(conn, [event("queued", token_id, _queued(stored))])
    return Created(generation_json(stored), False)


async def _by_key(conn: AsyncConnection, token_id: int, key: str) -> Any:
    query = select(Generation).where(
        Generation.token_id == token_id, Generation.idempotency_key == key
    )
    return (await conn.execute(query)).first()


async def _check_collaborator(conn: AsyncConnection, collaborator: int, token_id: int) -> None:
    if collaborator == token_id or not await can_borrow(conn, collaborator, token_id):
        raise NoCollaboration(collaborator, token_id)


def _new_row(
    generation_id: str,
    token_id: int,
    request: GenerationRequest,
    key: str | None,
    price: int,
    priority: int,
) -> dict[str, Any]:
    return {
        "id": generation_id,
        "token_id": token_id,
        "kind": request.kind,
        "prompt": request.prompt,
        "options": request.options,
        "source": "api",
        "status": QUEUED,
        "priority": priority,
        "idempotency_key": key,
        "collaborator_token_id": request.collaborator,
        "credits_reserved": price,
        "created_at": utcnow(),
    }


def _queued(row: Any) -> dict[str, Any]:
    """Public: no prompt (it is the owner's until the content is out)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "source": row.source,
        "status": QUEUED,
        "creditsReserved": row.credits_reserved,
    }


# -- claiming -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Claimed:
    id: str
    token_id: int
    attempts: int  # this run's number, from 1
    source: str
    kind: str
    prompt: str
    options: Mapping[str, Any]
    credits_reserved: int
    collaborator_token_id: int | None
    lease_expires_at: datetime


def _effective_priority(priorities: Mapping[int, int]) -> ColumnElement[Any]:
    """A job's priority: its own, or for an on-chain request its agent's package tier's
    (the indexer inserts them without one)."""
    tiers = {t: p for t, p in priorities.items() if p}
    if not tiers:
        return table_of(Generation).c.priority
    tier = (
        select(case(tiers, value=Agent.package_type, else_=0))
        .where(Agent.token_id == Generation.token_id)
        .scalar_subquery()
    )
    return case((Generation.source == "chain", func.coalesce(tier, 0)), else_=Generation.priority)


def _candidates(priorities: Mapping[int, int]) -> Any:
    """The due jobs in claim order (``now`` and ``limit`` bound); built once per priorities,
    as the claim's other statements are: building one cost more than running it."""
    return _candidates_by_tier(tuple(sorted(priorities.items())))


@functools.cache
def _candidates_by_tier(priorities: tuple[tuple[int, int], ...]) -> Any:
    now = bindparam("now", type_=Generation.next_attempt_at.type)
    due = Generation.next_attempt_at.is_(None) | (Generation.next_attempt_at <= now)
    order = _effective_priority(dict(priorities)).desc()
    return (
        select(Generation.id, Generation.token_id)
        .where(Generation.status == QUEUED, due)
        .order_by(order, Generation.created_at, Generation.id)
        .limit(bindparam("limit", type_=Integer))
        .with_for_update(skip_locked=True, of=Generation)  # ignored by SQLite
    )


async def _claimable_agents(conn: AsyncConnection, tokens: list[int]) -> set[int]:
    """The agents this claim may take jobs of: on PostgreSQL those no other claim is
    taking at this moment (advisory lock until commit), so running counts stay true."""
    if conn.dialect.name != "postgresql":
        return set(tokens)
    locked = text(
        "SELECT t FROM unnest(:tokens) AS t "
        "WHERE pg_try_advisory_xact_lock(:cls, CAST(t % :wrap AS integer))"
    ).bindparams(bindparam("tokens", type_=postgresql.ARRAY(BigInteger)))
    rows = await conn.execute(locked, {"tokens": tokens, "cls": CLAIM_LOCK_CLASS, "wrap": INT4})
    return {int(t) for (t,) in rows}


_RUNNING_COUNTS = (
    select(Generation.token_id, func.count())
    .where(
        Generation.status == RUNNING, Generation.token_id.in_(bindparam("tokens", expanding=True))
    )
    .group_by(Generation.token_id)
)


async def _running_counts(conn: AsyncConnection, tokens: set[int]) -> dict[int, int]:
    rows = await conn.execute(_RUNNING_COUNTS, {"tokens": sorted(tokens)})
    return {int(token): int(count) for token, count in rows}


def _choose(
    candidates: Sequence[Any], allowed: set[int], running: dict[int, int], n: int, per_agent: int
) -> list[str]:
    chosen: list[str] = []
    for candidate in candidates:
        token = int(candidate.token_id)
        if token in allowed and running.get(token, 0) < per_agent and len(chosen) < n:
            running[token] = running.get(token, 0) + 1
            chosen.append(candidate.id)
    return chosen


async def claim(
    engine: AsyncEngine,
    owner: str,
    n: int,
    settings: GenerationSettings,
    priorities: Mapping[int, int],
    now: datetime | None = None,
) -> list[Claimed]:
    """Take up to ``n`` due jobs for ``owner``, within the per-agent limit."""
    now = now or utcnow()
    if n <= 0:
        return []
    async with engine.begin() as conn:
        bound = {"now": now, "limit": n * OVERFETCH}
        candidates = (await conn.execute(_candidates(priorities), bound)).all()
        if not candidates:
            return []
        allowed = await _claimable_agents(conn, sorted({int(c.token_id) for c in candidates}))
        running = await _running_counts(conn, allowed)
        chosen = _choose(candidates, allowed, running, n, settings.per_agent_concurrency)
        if not chosen:
            return []
        expires = now + timedelta(seconds=settings.lease)
        bound = {"ids": chosen, "b_owner": owner, "b_expires": expires, "b_now": now}
        rows = await conn.execute(_TAKE, bound)
        claimed = {r.id: _claimed(r) for r in rows}
        started = [
            event("started", c.token_id, {"id": c.id, "run": c.attempts}) for c in claimed.values()
        ]
        await record_events(conn, started)
    return [claimed[i] for i in chosen if i in claimed]  # in priority order


_CLAIMED_COLUMNS = (
    Generation.id,
    Generation.token_id,
    Generation.attempts,
    Generation.source,
    Generation.kind,
    Generation.prompt,
    Generation.options,
    Generation.credits_reserved,
    Generation.collaborator_token_id,
    Generation.lease_expires_at,
)


_TAKE = (
    update(Generation)
    .where(Generation.id.in_(bindparam("ids", expanding=True)), Generation.status == QUEUED)
    .values(
        status=RUNNING,
        lease_owner=bindparam("b_owner"),
        lease_expires_at=bindparam("b_expires"),
        attempts=Generation.attempts + 1,
        started_at=bindparam("b_now"),
        next_attempt_at=None,
    )
    .returning(*_CLAIMED_COLUMNS)
)


def _claimed(row: Any) -> Claimed:
    expires = aware(row.lease_expires_at)
    assert expires is not None  # just set
    return Claimed(
        row.id,
        int(row.token_id),
        int(row.attempts),
        row.source,
        row.kind,
        row.prompt,
        dict(row.options or {}),
        int(row.credits_reserved),
        row.collaborator_token_id,
        expires,
    )


# -- while running ------------------------------------------------------------------------


async def renew(
    engine: AsyncEngine, generation_id: str, owner: str, lease: float, now: datetime | None = None
) -> bool | None:
    """Extend ``owner``'s lease; returns whether a cancel was asked for, or None if the
    job is no longer ``owner``'s (its lease was taken over, or it was rolled back)."""
    expires = (now or utcnow()) + timedelta(seconds=lease)
    async with engine.begin() as conn:
        flag = await conn.scalar(
            update(Generation)
            .where(*_mine(generation_id, owner))
            .values(lease_expires_at=expires)
            .returning(Generation.cancel_requested)
        )
    return None if flag is None else bool(flag)


def _mine(generation_id: str, owner: str) -> tuple[ColumnElement[bool], ...]:
    return (
        Generation.id == generation_id,
        Generation.status == RUNNING,
        Generation.lease_owner == owner,
    )


async def give_back(engine: AsyncEngine, generation_id: str, owner: str, reason: str) -> bool:
    """Put a running job of ``owner`` back in the queue as it was (a worker stopping
    before the job could finish); its attempt is not counted, its reservation stays."""
    async with engine.begin() as conn:
        token = await conn.scalar(
            update(Generation)
            .where(*_mine(generation_id, owner))
            .values(
                status=QUEUED,
                lease_owner=None,
                lease_expires_at=None,
                attempts=Generation.attempts - 1,  # a running job's are at least 1
                next_attempt_at=None,
            )
            .returning(Generation.token_id)
        )
        if token is None:
            return False
        payload = {"id": generation_id, "attempt": None, "nextAttemptAt": None, "error": reason}
        await record_events(conn, [event("retrying", int(token), payload)])
    return True


# -- leaving running (in the agent's writer transaction) ----------------------------------


async def settle_failure(
    conn: AsyncConnection, agent: Any, row: Any, status: str, error: str | None, now: datetime
) -> int:
    """End ``row`` as failed or cancelled and give its reservation back; returns the
    credits released."""
    await conn.execute(
        update(Generation)
        .where(Generation.id == row.id)
        .values(
            status=status,
            error=error,
            finished_at=now,
            lease_expires_at=None,
            next_attempt_at=None,
        )
    )
    released = 0
    if row.credits_reserved > 0:
        released = (await release(conn, agent, row.id)).released
    payload: dict[str, Any] = {"id": row.id, "creditsReleased": released}
    if status == FAILED:
        payload |= {"error": error, "attempts": row.attempts}
    await record_events(conn, [event(status, agent.token_id, payload)])
    return released


async def requeue(conn: AsyncConnection, row: Any, token_id: int, error: str, at: datetime) -> None:
    """Back to the queue after a transient failure, due again at ``at``; the reservation
    stays for the next run."""
    await conn.execute(
        update(Generation)
        .where(Generation.id == row.id)
        .values(
            status=QUEUED,
            error=error,
            next_attempt_at=at,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    payload = {"id": row.id, "attempt": row.attempts, "nextAttemptAt": iso(at), "error": error}
    await record_events(conn, [event("retrying", token_id, payload)])


def backoff(settings: GenerationSettings, attempts: int, retry_after: float | None = None) -> float:
    """Seconds before run ``attempts + 1``: exponential with jitter, at least a provider's
    Retry-After, at most ``backoff_max``."""
    ceiling = min(settings.backoff_max, settings.backoff_base * 2.0 ** max(attempts - 1, 0))
    wait = max(random.uniform(0.5, 1.0) * ceiling, retry_after or 0.0)
    return min(wait, settings.backoff_max)


async def fail_or_retry(
    conn: AsyncConnection,
    agent: Any,
    row: Any,
    settings: GenerationSettings,
    error: str,
    transient: bool,
    retry_after: float | None = None,
) -> datetime | None:
    """A failed run: again later if it is transient and runs are left (returns when),
    else failed for good with its credits released (returns None)."""
    now = utcnow()
    if transient and row.attempts < settings.max_attempts:
        at = now + timedelta(seconds=backoff(settings, row.attempts, retry_after))
        await requeue(conn, row, agent.token_id, error, at)
        return at
    await settle_failure(conn, agent, row, FAILED, error, now)
    return None


# -- the reaper ---------------------------------------------------------------------------


async def _expired(engine: AsyncEngine, now: datetime) -> list[tuple[str, int]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(Generation.id, Generation.token_id)
            .where(Generation.status == RUNNING, Generation.lease_expires_at < now)
            .order_by(Generation.lease_expires_at)
            .limit(REAP_BATCH)
        )
        return [(r.id, int(r.token_id)) for r in rows]


async def reap(
    writer: AgentWriter, settings: GenerationSettings, now: datetime | None = None
) -> list[datetime]:
    """Jobs whose worker stopped renewing its lease (it died, or hangs): queued again, or
    failed (cancelled, if that was asked) once their runs are used up. Returns when the
    requeued ones are due."""
    now = now or utcnow()
    due: list[datetime] = []
    for generation_id, token_id in await _expired(writer.engine, now):
        try:
            async with writer.write(token_id) as (conn, agent):
                at = await _reap_one(conn, agent, generation_id, settings, now)
        except UnknownAgent:
            continue  # rolled back by a reorg, with its generations
        if at is not None:
            due.append(at)
    return due


async def _reap_one(
    conn: AsyncConnection,
    agent: Any,
    generation_id: str,
    settings: GenerationSettings,
    now: datetime,
) -> datetime | None:
    row = await read_generation(conn, generation_id)
    expires = aware(row.lease_expires_at) if row is not None else None
    if row is None or row.status != RUNNING or expires is None or expires >= now:
        return None  # finished, or renewed, since it was read
    if row.cancel_requested:
        await settle_failure(conn, agent, row, CANCELLED, None, now)
        return None
    error = f"run {row.attempts} stopped: its worker's lease expired"
    return await fail_or_retry(conn, agent, row, settings, error, transient=True)


# -- cancelling ---------------------------------------------------------------------------


async def generation_token(engine: AsyncEngine, generation_id: str) -> int | None:
    async with engine.connect() as conn:
        token = await conn.scalar(select(Generation.token_id).where(Generation.id == generation_id))
    return None if token is None else int(token)


async def cancel(writer: AgentWriter, token_id: int, generation_id: str) -> dict[str, Any]:
    """Cancel a generation of the agent: a queued one at once (its credits released), a
    running one by flagging it for its worker. Raises ``NotCancellable`` when it is
    finished; returns the generation as it is now."""
    async with writer.write(token_id) as (conn, agent):
        row = await read_generation(conn, generation_id)
        if row is None or row.token_id != token_id:
            raise UnknownGeneration(generation_id)
        if row.status == QUEUED:
            await settle_failure(conn, agent, row, CANCELLED, None, utcnow())
        elif row.status == RUNNING and not row.cancel_requested:
            await conn.execute(
                update(Generation).where(Generation.id == row.id).values(cancel_requested=True)
            )
            await record_events(conn, [event("cancelling", token_id, {"id": row.id})])
        elif row.status in FINISHED:
            raise NotCancellable(generation_id, row.status)
        view = await generation_view(conn, generation_id)
    assert view is not None
    return view
