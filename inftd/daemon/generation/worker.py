"""The worker: one run of one claimed job, from its prompt to its stored, charged result.

A run: reserve the credits of an on-chain request (the indexer queued it with none), build
the prompt (``inftd.agents.prompts``: the owner's preferences, the agent's evolution, its
memories recalled for the request, its influences and, with a grant, its collaborator's
styles), run the strategy (``strategies.run_job``) under the job timeout while a heartbeat
renews the lease and watches for a cancel, store the content, then in ONE transaction of
the agent's writer: mark it succeeded, commit its credits, record provider, model and cost,
add experience, a memory of it and its pending mint, and publish
``generation.succeeded``. That last write runs under ``asyncio.shield``: a cancel (the
shutdown's) that arrives while it runs cannot lose it.

A failure releases the credits (``generation.failed``), or, when it is transient and runs
are left, queues the job again after a backoff (``generation.retrying``) with its
reservation kept. A cancel ends it ``cancelled`` with its credits released. A run whose
lease was taken over writes nothing: the job is another run's now.

Progress goes to the agent's channel as ``generation.progress`` events, **private** (the
owner's and the operator's): the prompt is the owner's, and so is the text streaming out of
it until the generation succeeds, when the content becomes public (``/v1/content``, the
mint). Streamed text is batched (``progress_interval`` seconds or ``progress_chars``
characters per event; ``offset`` places each piece), the strategy's rounds, parts and
provider attempts go as they come (an ``attempt`` voids the text before it). The public
lifecycle events (queued, started, retrying, succeeded, failed, cancelled) name no prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.agents.collaboration import can_borrow
from inftd.agents.credits import commit, release, reserve
from inftd.agents.embeddings import Embedder
from inftd.agents.errors import (
    InsufficientCredits,
    LimitExceeded,
    UnknownAgent,
    UnknownReservation,
    UnpricedGeneration,
)
from inftd.agents.events import batched_events, record_events
from inftd.agents.influences import lendable_styles
from inftd.agents.learning import XP_GENERATION, current_weights, gain_experience
from inftd.agents.memory import MAX_QUERY, recall, remember
from inftd.agents.prompts import PromptRequest, build_prompt
from inftd.agents.usage import price_of
from inftd.agents.writer import AgentWriter
from inftd.daemon.config import Settings
from inftd.daemon.generation.content import ContentStore, Stored, register
from inftd.daemon.generation.mints import add_mint
from inftd.daemon.generation.queue import (
    CANCELLED,
    FAILED,
    RUNNING,
    SUCCEEDED,
    Claimed,
    event,
    fail_or_retry,
    read_generation,
    renew,
    settle_failure,
    utcnow,
)
from inftd.daemon.generation.types import GenerationFailed, Job, Output, Progress
from inftd.store.models import Agent, Generation

log = logging.getLogger(__name__)

T = TypeVar("T")
JobRunner = Callable[
    [Job, Progress], Coroutine[Any, Any, Output]
]  # strategies.run_job with a router
MEMORY_KIND = "generation"
MEMORY_IMPORTANCE = 0.4  # a plain record of work; feedback on it matters more (0.4-0.7)
MEMORY_EXCERPT = 300  # characters of a text generation kept in its memory
SYSTEM = (
    "You are the creative agent of an INFT package token. Answer the request itself, in "
    "the style and with the qualities and preferences it names."
)
LOST = "lost"  # the outcome of a run whose job is no longer its own
RETRYING = "retrying"  # the outcome of a run whose job is queued again after a backoff


@dataclass
class WorkerContext:
    """What a run needs, built once per process (``scheduler.GenerationService``)."""

    engine: AsyncEngine
    writer: AgentWriter
    embedder: Embedder
    settings: Settings
    content: ContentStore
    run: JobRunner
    owner: str  # the lease owner: this process's worker
    poke: Callable[[], None] = lambda: None  # events were committed: tell the hub
    finishing: set[asyncio.Task[Any]] = field(default_factory=set)  # shielded final writes


@dataclass
class Control:
    """Set from outside a run: the owner cancelled it, or its lease is lost."""

    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    lost: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class Outcome:
    status: str  # succeeded, failed, cancelled, retrying or lost
    retry_at: datetime | None = None  # when a retrying job is due


class Cancelled(Exception):
    """The owner cancelled the running job."""


class LeaseLost(Exception):
    """The job is no longer this run's (taken over, or rolled back)."""


# -- one run ------------------------------------------------------------------------------


async def run_claimed(ctx: WorkerContext, claimed: Claimed, control: Control) -> Outcome:
    """Run a claimed job to its end. One log line as it starts and one as it ends."""
    began = time.monotonic()
    log.info(
        "generation %s run %d started (agent %d, %s, %s)",
        claimed.id, claimed.attempts, claimed.token_id, claimed.kind, claimed.source,
    )  # fmt: skip
    outcome = Outcome("stopped")  # if the run itself is cancelled (the worker stops)
    try:
        outcome = await _run(ctx, claimed, control)
        return outcome
    finally:
        log.info(
            "generation %s run %d %s in %.3f s",
            claimed.id, claimed.attempts, outcome.status, time.monotonic() - began,
        )  # fmt: skip


async def _run(ctx: WorkerContext, claimed: Claimed, control: Control) -> Outcome:
    try:
        if not await shielded(ctx, reserve_at_claim(ctx, claimed)):
            return Outcome(FAILED)
        job, explanation = await build_job(ctx, claimed)
        output = await _guarded(ctx, claimed, job, control)
        stored, parts = await _store(ctx, output)
        finish = finish_success(ctx, claimed, output, stored, parts, explanation)
        return await shielded(ctx, finish)
    except Cancelled:
        return await shielded(ctx, finish_cancelled(ctx, claimed))
    except LeaseLost:
        return Outcome(LOST)
    except GenerationFailed as exc:
        failed = finish_failure(ctx, claimed, exc.message, exc.transient, exc.retry_after)
        return await shielded(ctx, failed)
    except TimeoutError:
        message = f"timed out after {ctx.settings.generation.job_timeout:g} s"
        return await shielded(ctx, finish_failure(ctx, claimed, message, True))
    except Exception:
        log.exception("generation %s run %d failed unexpectedly", claimed.id, claimed.attempts)
        return await shielded(ctx, finish_failure(ctx, claimed, "internal error", True))


async def shielded(ctx: WorkerContext, work: Coroutine[Any, Any, T]) -> T:
    """Run a write so that cancelling its caller cannot stop it halfway (on SQLite a
    transaction cut off mid-statement can keep the database's write lock); the task is kept
    in ``ctx.finishing`` so a stopping worker waits for it."""
    task = asyncio.create_task(work)
    ctx.finishing.add(task)
    task.add_done_callback(ctx.finishing.discard)
    return await asyncio.shield(task)


async def _guarded(ctx: WorkerContext, claimed: Claimed, job: Job, control: Control) -> Output:
    """The strategy's output, unless the job times out, is cancelled or its lease is lost
    first (then the strategy is stopped and ``TimeoutError``/``Cancelled``/``LeaseLost``)."""
    progress = ProgressWriter(ctx, claimed)
    work = asyncio.create_task(ctx.run(job, progress))
    heartbeat = asyncio.create_task(_heartbeat(ctx, claimed, control))
    cancel = asyncio.create_task(control.cancel.wait())
    lost = asyncio.create_task(control.lost.wait())
    try:
        await asyncio.wait(
            {work, cancel, lost},
            timeout=ctx.settings.generation.job_timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
    finally:
        for task in (work, heartbeat, cancel, lost):
            if not task.done():
                task.cancel()
        await asyncio.gather(work, heartbeat, cancel, lost, return_exceptions=True)
    if work.done() and not work.cancelled():
        output = work.result()  # raises the strategy's GenerationFailed
        await progress.flush()
        return output
    if control.lost.is_set():
        raise LeaseLost
    if control.cancel.is_set():
        raise Cancelled
    raise TimeoutError


async def _heartbeat(ctx: WorkerContext, claimed: Claimed, control: Control) -> None:
    """Renew the lease every third of it; notice a cancel asked for in another process."""
    lease = ctx.settings.generation.lease
    while True:
        await asyncio.sleep(lease / 3)
        try:
            flagged = await shielded(ctx, renew(ctx.engine, claimed.id, ctx.owner, lease))
        except SQLAlchemyError as exc:  # the lease outlasts a blip; the reaper handles worse
            log.warning("generation %s: renewing its lease failed: %s", claimed.id, exc)
            continue
        if flagged is None:
            control.lost.set()
            return
        if flagged:
            control.cancel.set()


# -- before the strategy ------------------------------------------------------------------


def _mine(row: Any, owner: str) -> bool:
    return row is not None and row.status == RUNNING and row.lease_owner == owner


def _check_prompt(limit: int, prompt: str) -> None:
    if len(prompt) > limit:
        raise LimitExceeded("max_prompt_chars", limit, len(prompt))


async def reserve_at_claim(ctx: WorkerContext, claimed: Claimed) -> bool:
    """Reserve the price of an on-chain request (API requests reserved when created);
    one that the package cannot pay for fails here, charging nothing. Returns whether the
    run goes on."""
    if claimed.credits_reserved > 0 or claimed.source != "chain":
        return True
    try:
        async with ctx.writer.write(claimed.token_id) as (conn, agent):
            row = await read_generation(conn, claimed.id)
            if not _mine(row, ctx.owner):
                raise LeaseLost
            limits = ctx.settings.limits_of(agent.package_type)
            quality = str((row.options or {}).get("quality", "standard"))
            try:
                price = price_of(limits, row.kind, quality)
                _check_prompt(limits.max_prompt_chars, row.prompt)
                if price > 0:
                    await reserve(conn, agent, price, row.id, row.id)
            except (UnpricedGeneration, LimitExceeded, InsufficientCredits) as exc:
                await settle_failure(conn, agent, row, FAILED, str(exc), utcnow())
                return False
            await conn.execute(
                update(Generation).where(Generation.id == row.id).values(credits_reserved=price)
            )
    except UnknownAgent:
        raise LeaseLost from None
    finally:
        ctx.poke()
    return True


async def _memories(ctx: WorkerContext, conn: AsyncConnection, claimed: Claimed) -> list[str]:
    """The agent's memories most relevant to the request (text only); none if the
    embedder fails: a prompt without context beats no generation."""
    if claimed.kind != "text":
        return []
    try:
        found = await recall(
            conn, ctx.embedder, claimed.token_id, claimed.prompt[:MAX_QUERY],
            ctx.settings.memory.top_k,
        )  # fmt: skip
    except Exception as exc:
        log.warning("generation %s: recalling memories failed: %s", claimed.id, exc)
        return []
    return [m.text for m in found]


async def _borrowed(conn: AsyncConnection, claimed: Claimed, now: datetime) -> list[str]:
    """The collaborator's styles, while its grant holds."""
    collaborator = claimed.collaborator_token_id
    if collaborator is None or not await can_borrow(conn, collaborator, claimed.token_id):
        return []
    row = (await conn.execute(select(Agent).where(Agent.token_id == collaborator))).first()
    return [] if row is None else [s.style for s in lendable_styles(row.evolution, now)]


async def build_job(ctx: WorkerContext, claimed: Claimed) -> tuple[Job, dict[str, Any]]:
    """The job for the strategy, and what the prompt builder added (kept with it)."""
    now = utcnow()
    async with ctx.engine.connect() as conn:
        query = select(Agent).where(Agent.token_id == claimed.token_id)
        agent = (await conn.execute(query)).first()
        if agent is None:
            raise LeaseLost  # a reorg removed the agent, and the job with it
        memories = await _memories(ctx, conn, claimed)
        influences = await _borrowed(conn, claimed, now) + list(agent.collection_influences or [])
    options = dict(claimed.options)
    built = build_prompt(
        PromptRequest(claimed.kind, claimed.prompt, options),
        now=now,
        preferences=agent.preferences,
        evolution=agent.evolution,
        memories=memories,
        influences=influences,
    )
    weights = current_weights(agent.evolution, now)
    job = Job(
        generation_id=claimed.id,
        token_id=claimed.token_id,
        package_type=agent.package_type,
        kind="image" if claimed.kind == "image" else "text",
        prompt=built.text,
        system=SYSTEM if claimed.kind == "text" else None,
        quality="high" if options.get("quality") == "high" else "standard",
        size=options.get("size"),
        strategy=options.get("strategy", "single"),
        provider_hint=options.get("provider"),
        hints={**weights["providers"], **weights["models"]},
    )
    return job, built.explanation


# -- progress -----------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON (what a JSON column and a WebSocket take)."""
    return orjson.loads(orjson.dumps(value, default=str))


@dataclass
class _Stream:
    """The text of one stream (a job's, or one part's: the chunks' other fields say)."""

    tags: dict[str, Any]
    pending: list[str] = field(default_factory=list)
    offset: int = 0  # characters of this attempt's text sent before the pending ones


class ProgressWriter:
    """The ``Progress`` a run hands its strategy: private ``generation.progress`` events,
    streamed text batched (see the module docstring). Parts made in parallel stream apart,
    each with its own offsets; events go out one at a time, in order."""

    def __init__(self, ctx: WorkerContext, claimed: Claimed) -> None:
        self._ctx = ctx
        self._claimed = claimed
        self._streams: dict[bytes, _Stream] = {}
        self._chars = 0  # pending, in all streams
        self._last = time.monotonic()
        self._lock = asyncio.Lock()

    async def __call__(self, stage: str, data: Mapping[str, Any]) -> None:
        settings = self._ctx.settings.generation
        if stage == "chunk":
            piece = str(data.get("text", ""))
            self._stream({k: v for k, v in data.items() if k != "text"}).pending.append(piece)
            self._chars += len(piece)
            waited = time.monotonic() - self._last
            if self._chars >= settings.progress_chars or waited >= settings.progress_interval:
                await self.flush()
            return
        await self.flush()
        if stage == "attempt":  # another provider starts over: that stream's text is void
            for stream in self._streams.values():
                if all(data.get(k) == v for k, v in stream.tags.items()):
                    stream.offset = 0
        async with self._lock:
            await self._emit({**json_safe(dict(data)), "stage": stage})

    def _stream(self, tags: dict[str, Any]) -> _Stream:
        tags = json_safe(tags)
        key = orjson.dumps(tags, option=orjson.OPT_SORT_KEYS)
        if key not in self._streams:
            self._streams[key] = _Stream(tags)
        return self._streams[key]

    async def flush(self) -> None:
        async with self._lock:
            for stream in self._streams.values():
                if not stream.pending:
                    continue
                text = "".join(stream.pending)
                stream.pending.clear()
                self._chars -= len(text)
                offset, stream.offset = stream.offset, stream.offset + len(text)
                chunk = {**stream.tags, "stage": "chunk", "text": text, "offset": offset}
                await self._emit(chunk)

    async def _emit(self, data: dict[str, Any]) -> None:
        self._last = time.monotonic()
        payload = {**data, "id": self._claimed.id, "run": self._claimed.attempts}
        await shielded(self._ctx, self._write(payload))

    async def _write(self, payload: dict[str, Any]) -> None:
        claimed = self._claimed
        try:
            async with self._ctx.engine.begin() as conn:
                await record_events(
                    conn, [event("progress", claimed.token_id, payload, private=True)]
                )
        except SQLAlchemyError as exc:  # progress is a courtesy: the job goes on without it
            log.warning("generation %s: a progress event was lost: %s", claimed.id, exc)
            return
        self._ctx.poke()


# -- after the strategy -------------------------------------------------------------------


async def _store(ctx: WorkerContext, output: Output) -> tuple[Stored, list[Stored]]:
    stored = await ctx.content.put(output.data, output.content_type)
    parts = [await ctx.content.put(data, kind) for kind, data in output.parts]
    return stored, parts


class _Known:
    """An embedder that knows one text's vector already (made before the final write, so
    the agent's lock is not held while a remote embedder answers)."""

    def __init__(self, inner: Embedder, text: str, vector: list[float]) -> None:
        self.name = inner.name
        self._inner = inner
        self._text = text
        self._vector = vector

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if list(texts) == [self._text]:
            return [self._vector]
        return await self._inner.embed(texts)


def _memory_text(claimed: Claimed, output: Output) -> str:
    text = (
        f"Made a {claimed.kind} generation for the request {claimed.prompt[:200]!r} "
        f"with {output.provider} ({output.model})."
    )
    if output.kind == "text":
        made = " ".join(output.data.decode(errors="replace").split())
        text += f" It begins: {made[:MEMORY_EXCERPT]}"
    return text


async def _memory_embedder(ctx: WorkerContext, text: str) -> Embedder | None:
    try:
        [vector] = await ctx.embedder.embed([text])
    except Exception as exc:
        log.warning("generation memory not kept: embedding it failed: %s", exc)
        return None
    return _Known(ctx.embedder, text, list(vector))


def _detail(output: Output, run: int, explanation: Mapping[str, Any]) -> Any:
    usage = output.usage
    return json_safe(
        {
            **output.detail,
            "run": run,
            "usage": {
                "inputTokens": usage.input_tokens,
                "outputTokens": usage.output_tokens,
                "images": usage.images,
                "costUsd": usage.cost_usd,
                "estimated": usage.estimated,
            },
            "prompt": explanation,
        }
    )


async def finish_success(
    ctx: WorkerContext,
    claimed: Claimed,
    output: Output,
    stored: Stored,
    parts: Sequence[Stored],
    explanation: Mapping[str, Any],
) -> Outcome:
    """The one transaction that ends a successful run (see the module docstring)."""
    memory = _memory_text(claimed, output)
    embedder = await _memory_embedder(ctx, memory)
    now = utcnow()
    try:
        async with ctx.writer.write(claimed.token_id) as (conn, agent):
            row = await read_generation(conn, claimed.id)
            if not _mine(row, ctx.owner):
                return await _not_mine(conn, agent, claimed, row)
            if row.cancel_requested:  # asked while the last chunk came: the owner said no
                await settle_failure(conn, agent, row, CANCELLED, None, now)
                return Outcome(CANCELLED)
            async with batched_events(conn):  # credits, experience, memory: one write
                await _succeed(ctx, conn, agent, row, output, stored, parts, now, explanation)
                if embedder is not None:
                    await remember(
                        conn, embedder, agent.token_id, MEMORY_KIND, memory, MEMORY_IMPORTANCE,
                        row.id, max_per_agent=ctx.settings.memory.max_per_agent,
                    )  # fmt: skip
            await add_mint(conn, row.id)
    except UnknownAgent:
        return Outcome(LOST)
    finally:
        ctx.poke()
    return Outcome(SUCCEEDED)


async def _succeed(
    ctx: WorkerContext,
    conn: AsyncConnection,
    agent: Any,
    row: Any,
    output: Output,
    stored: Stored,
    parts: Sequence[Stored],
    now: datetime,
    explanation: Mapping[str, Any],
) -> None:
    uri = stored.uri(ctx.settings.generation.public_url)
    await conn.execute(
        update(Generation)
        .where(Generation.id == row.id)
        .values(
            status=SUCCEEDED,
            credits_used=row.credits_reserved,
            provider=output.provider,
            model=output.model,
            cost_usd=output.usage.cost_usd,
            content_uri=uri,
            content_hash=stored.content_hash,
            content_type=output.content_type,
            detail=_detail(output, row.attempts, explanation),
            error=None,
            finished_at=now,
            lease_expires_at=None,
        )
    )
    for piece in (stored, *parts):
        await register(conn, piece)
    if row.credits_reserved > 0:
        await commit(conn, agent, row.id, row.credits_reserved)
    await gain_experience(conn, agent, XP_GENERATION, now)
    payload = {
        "id": row.id,
        "kind": row.kind,
        "contentUri": uri,
        "contentHash": stored.content_hash,
        "contentType": output.content_type,
        "provider": output.provider,
        "model": output.model,
        "creditsUsed": row.credits_reserved,
        "parts": len(parts),
    }
    await record_events(conn, [event(SUCCEEDED, agent.token_id, payload)])


async def _not_mine(conn: AsyncConnection, agent: Any, claimed: Claimed, row: Any) -> Outcome:
    """The run's job is not its own any more. If the row is gone (a reorg removed the
    on-chain request), give back a reservation it left (the ledger has no link to it)."""
    if row is None:
        with contextlib.suppress(UnknownReservation):  # none was made, or settled already
            await release(conn, agent, claimed.id)
    log.warning("generation %s run %d: no longer this worker's job", claimed.id, claimed.attempts)
    return Outcome(LOST)


async def finish_failure(
    ctx: WorkerContext,
    claimed: Claimed,
    message: str,
    transient: bool,
    retry_after: float | None = None,
) -> Outcome:
    """Queue the job again after a backoff, or fail it for good releasing its credits."""
    try:
        async with ctx.writer.write(claimed.token_id) as (conn, agent):
            row = await read_generation(conn, claimed.id)
            if not _mine(row, ctx.owner):
                return await _not_mine(conn, agent, claimed, row)
            if row.cancel_requested:
                await settle_failure(conn, agent, row, CANCELLED, None, utcnow())
                return Outcome(CANCELLED)
            settings = ctx.settings.generation
            at = await fail_or_retry(conn, agent, row, settings, message, transient, retry_after)
    except UnknownAgent:
        return Outcome(LOST)
    finally:
        ctx.poke()
    return Outcome(FAILED) if at is None else Outcome(RETRYING, at)


async def finish_cancelled(ctx: WorkerContext, claimed: Claimed) -> Outcome:
    try:
        async with ctx.writer.write(claimed.token_id) as (conn, agent):
            row = await read_generation(conn, claimed.id)
            if not _mine(row, ctx.owner):
                return await _not_mine(conn, agent, claimed, row)
            await settle_failure(conn, agent, row, CANCELLED, None, utcnow())
    except UnknownAgent:
        return Outcome(LOST)
    finally:
        ctx.poke()
    return Outcome(CANCELLED)
