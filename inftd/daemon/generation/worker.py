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

Progress goes to the agent's channel as private ``generation.progress`` events, written
behind the strategy; the last of them and the provider calls the run made are written in
its final transaction (``progress``). The public lifecycle events (queued, started,
retrying, succeeded, failed, cancelled) name no prompt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

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
from inftd.agents.writer import AGENT_ROW
from inftd.daemon.generation.content import Stored, address, register
from inftd.daemon.generation.context import WorkerContext, shielded
from inftd.daemon.generation.mints import add_mint
from inftd.daemon.generation.progress import Held, json_safe
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
from inftd.daemon.generation.types import GenerationFailed, Job, Output
from inftd.store.models import Agent, Generation

log = logging.getLogger(__name__)

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
    held = Held(ctx, claimed)
    try:
        return await _steps(ctx, claimed, control, held)
    finally:
        await shielded(ctx, held.write_rest())


async def _steps(ctx: WorkerContext, claimed: Claimed, control: Control, held: Held) -> Outcome:
    try:
        if not await shielded(ctx, reserve_at_claim(ctx, claimed)):
            return Outcome(FAILED)
        job, explanation = await build_job(ctx, claimed)
        output = await _guarded(ctx, job, control, held)
        return await _finish(ctx, claimed, output, explanation, held)
    except Cancelled:
        return await shielded(ctx, finish_cancelled(ctx, claimed, held))
    except LeaseLost:
        return Outcome(LOST)
    except GenerationFailed as exc:
        failed = finish_failure(ctx, claimed, exc.message, exc.transient, exc.retry_after, held)
        return await shielded(ctx, failed)
    except TimeoutError:
        message = f"timed out after {ctx.settings.generation.job_timeout:g} s"
        return await shielded(ctx, finish_failure(ctx, claimed, message, True, None, held))
    except Exception:
        log.exception("generation %s run %d failed unexpectedly", claimed.id, claimed.attempts)
        failed = finish_failure(ctx, claimed, "internal error", True, None, held)
        return await shielded(ctx, failed)


async def _guarded(ctx: WorkerContext, job: Job, control: Control, held: Held) -> Output:
    """The strategy's output, unless the job times out, is cancelled or its lease is lost
    first (then the strategy is stopped and ``TimeoutError``/``Cancelled``/``LeaseLost``).
    What the strategy left is ``held`` for the final transaction."""
    claimed = held.claimed
    work = asyncio.create_task(ctx.run(job, held.progress))
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
        return work.result()  # raises the strategy's GenerationFailed
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


def _mine(row: Any, claimed: Claimed, owner: str) -> bool:
    """Still this run's: running, under this worker's lease, in this run (a job reaped and
    claimed again by the same worker is another run's)."""
    return (
        row is not None
        and row.status == RUNNING
        and row.lease_owner == owner
        and row.attempts == claimed.attempts
    )


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
            if not _mine(row, claimed, ctx.owner):
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
            if price > 0:  # told even when the reserve replayed (a request a reorg
                # re-included): the row changes, and copies of it follow the agent's events
                await conn.execute(
                    update(Generation).where(Generation.id == row.id).values(credits_reserved=price)
                )
                data = {"id": row.id, "creditsReserved": price}
                await record_events(conn, [event("reserved", row.token_id, data)])
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
        agent = (await conn.execute(AGENT_ROW, {"token_id": claimed.token_id})).first()
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


# -- after the strategy -------------------------------------------------------------------


async def _finish(
    ctx: WorkerContext, claimed: Claimed, output: Output, explanation: Mapping[str, Any], held: Held
) -> Outcome:
    """Store the content and write the success. Independent waits run side by side: the
    content files and their fsync (awaited by the final transaction before it commits, so
    nothing names a file that is not on disk), the memory's embedding (not under the
    agent's lock) and the progress write under way (``held.take``)."""
    stored = address(output.data, output.content_type)
    parts = [address(data, kind) for kind, data in output.parts]
    written = asyncio.ensure_future(_write_files(ctx, output, stored, parts))
    try:
        memory, _ = await asyncio.gather(
            _memory_embedder(ctx, _memory_text(claimed, output)), held.take()
        )
        finish = finish_success(
            ctx, claimed, output, stored, parts, explanation, held, memory, written
        )
        return await shielded(ctx, finish)
    finally:
        await asyncio.gather(written, return_exceptions=True)  # retrieved on every path


async def _write_files(
    ctx: WorkerContext, output: Output, stored: Stored, parts: Sequence[Stored]
) -> None:
    await ctx.content.write(stored, output.data)
    for part, (_, data) in zip(parts, output.parts, strict=True):
        await ctx.content.write(part, data)


class _Known:
    """An embedder that knows one text's vector already (made before the final write, so
    the agent's lock is not held while a remote embedder answers)."""

    def __init__(self, inner: Embedder, text: str, vector: list[float]) -> None:
        self.name = inner.name
        self.text = text
        self._inner = inner
        self._vector = vector

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if list(texts) == [self.text]:
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


async def _memory_embedder(ctx: WorkerContext, text: str) -> _Known | None:
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
    held: Held,
    memory: _Known | None,
    written: Awaitable[object] | None = None,
) -> Outcome:
    """The one transaction that ends a successful run (see the module docstring); the
    memory's text is embedded already (``memory``; None if that failed); ``written``, the
    content files being stored, is awaited before the transaction commits."""
    now = utcnow()
    finished = _Finished(output, stored, parts, explanation, memory, now, written)
    try:
        async with ctx.writer.write(claimed.token_id) as (conn, agent):
            outcome = await _success(ctx, conn, agent, claimed, finished, held)
        held.committed()
    except UnknownAgent:
        return Outcome(LOST)
    finally:
        ctx.poke()
    return outcome


@dataclass(frozen=True)
class _Finished:
    """What a successful run made."""

    output: Output
    stored: Stored
    parts: Sequence[Stored]
    explanation: Mapping[str, Any]
    memory: _Known | None
    now: datetime
    written: Awaitable[object] | None


async def _success(
    ctx: WorkerContext,
    conn: AsyncConnection,
    agent: Any,
    claimed: Claimed,
    made: _Finished,
    held: Held,
) -> Outcome:
    uri = made.stored.uri(ctx.settings.generation.public_url)
    row = await _mark_succeeded(ctx, conn, claimed, made, uri)
    if row is None:  # not this run's any more, or cancelled while the last chunk came
        return await _not_succeeded(ctx, conn, agent, claimed, held, made.now)
    async with batched_events(conn):  # the events go last: one insert, the lock held least
        await held.record(conn)
        for piece in (made.stored, *made.parts):
            await register(conn, piece)
        if row.credits_reserved > 0:
            await commit(conn, agent, row.id, row.credits_reserved)
        await gain_experience(conn, agent, XP_GENERATION, made.now)
        payload = _succeeded(row, made, uri)
        await record_events(conn, [event(SUCCEEDED, agent.token_id, payload)])
        if made.memory is not None:
            await remember(
                conn, made.memory, agent.token_id, MEMORY_KIND, made.memory.text,
                MEMORY_IMPORTANCE, row.id, max_per_agent=ctx.settings.memory.max_per_agent,
                agent_locked=True,
            )  # fmt: skip
        await add_mint(conn, row.id)
    if made.written is not None:
        await made.written  # the files are on disk before anything names them
    return Outcome(SUCCEEDED)


async def _mark_succeeded(
    ctx: WorkerContext, conn: AsyncConnection, claimed: Claimed, made: _Finished, uri: str
) -> Any:
    """The row marked succeeded if it is still this run's and no cancel was asked for
    (read and written in one statement); its id, kind and credits, or None."""
    output = made.output
    bound = {
        "b_id": claimed.id,
        "b_owner": ctx.owner,
        "b_run": claimed.attempts,
        "b_provider": output.provider,
        "b_model": output.model,
        "b_cost": output.usage.cost_usd,
        "b_uri": uri,
        "b_hash": made.stored.content_hash,
        "b_type": output.content_type,
        "b_detail": _detail(output, claimed.attempts, made.explanation),
        "b_at": made.now,
    }
    return (await conn.execute(_MARK_SUCCEEDED, bound)).first()


# Built once (building it cost more than running it); the values are bound per run.
_MARK_SUCCEEDED = (
    update(Generation)
    .where(
        Generation.id == bindparam("b_id"),
        Generation.status == RUNNING,
        Generation.lease_owner == bindparam("b_owner"),
        Generation.attempts == bindparam("b_run"),
        Generation.cancel_requested.is_not(True),
    )
    .values(
        status=SUCCEEDED,
        credits_used=Generation.credits_reserved,
        provider=bindparam("b_provider"),
        model=bindparam("b_model"),
        cost_usd=bindparam("b_cost"),
        content_uri=bindparam("b_uri"),
        content_hash=bindparam("b_hash"),
        content_type=bindparam("b_type"),
        detail=bindparam("b_detail"),
        error=None,
        finished_at=bindparam("b_at"),
        lease_expires_at=None,
    )
    .returning(Generation.id, Generation.kind, Generation.credits_reserved)
)


def _succeeded(row: Any, made: _Finished, uri: str) -> dict[str, Any]:
    """The public ``generation.succeeded`` payload."""
    output = made.output
    return {
        "id": row.id,
        "kind": row.kind,
        "contentUri": uri,
        "contentHash": made.stored.content_hash,
        "contentType": output.content_type,
        "provider": output.provider,
        "model": output.model,
        "creditsUsed": row.credits_reserved,
        "parts": len(made.parts),
    }


async def _not_succeeded(
    ctx: WorkerContext,
    conn: AsyncConnection,
    agent: Any,
    claimed: Claimed,
    held: Held,
    now: datetime,
) -> Outcome:
    row = await read_generation(conn, claimed.id)
    if not _mine(row, claimed, ctx.owner):
        return await _not_mine(conn, agent, claimed, row)
    await held.record(conn)  # the owner said no while the last chunk came
    await settle_failure(conn, agent, row, CANCELLED, None, now)
    return Outcome(CANCELLED)


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
    retry_after: float | None,
    held: Held,
) -> Outcome:
    """Queue the job again after a backoff, or fail it for good releasing its credits."""
    await held.take()  # before the transaction: a progress write under way needs the lock
    try:
        async with ctx.writer.write(claimed.token_id) as (conn, agent):
            row = await read_generation(conn, claimed.id)
            if not _mine(row, claimed, ctx.owner):
                return await _not_mine(conn, agent, claimed, row)
            await held.record(conn)
            if row.cancel_requested:
                await settle_failure(conn, agent, row, CANCELLED, None, utcnow())
                at, status = None, CANCELLED
            else:
                settings = ctx.settings.generation
                at = await fail_or_retry(
                    conn, agent, row, settings, message, transient, retry_after
                )
                status = FAILED if at is None else RETRYING
        held.committed()
    except UnknownAgent:
        return Outcome(LOST)
    finally:
        ctx.poke()
    return Outcome(status, at)


async def finish_cancelled(ctx: WorkerContext, claimed: Claimed, held: Held) -> Outcome:
    await held.take()  # before the transaction: a progress write under way needs the lock
    try:
        async with ctx.writer.write(claimed.token_id) as (conn, agent):
            row = await read_generation(conn, claimed.id)
            if not _mine(row, claimed, ctx.owner):
                return await _not_mine(conn, agent, claimed, row)
            await held.record(conn)
            await settle_failure(conn, agent, row, CANCELLED, None, utcnow())
        held.committed()
    except UnknownAgent:
        return Outcome(LOST)
    finally:
        ctx.poke()
    return Outcome(CANCELLED)
