"""What a run needs (``WorkerContext``), and how its writes run as tasks a cancel cannot
cut off halfway."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.embeddings import Embedder
from inftd.agents.writer import AgentWriter
from inftd.daemon.config import Settings
from inftd.daemon.generation.content import ContentStore
from inftd.daemon.generation.routing.recorder import DbRecorder
from inftd.daemon.generation.types import Job, Output, Progress

T = TypeVar("T")
JobRunner = Callable[
    [Job, Progress], Coroutine[Any, Any, Output]
]  # strategies.run_job with a router


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
    recorder: DbRecorder | None = None  # the router's: a run's calls go in its final write


def spawn(ctx: WorkerContext, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """``work`` as a task kept in ``ctx.finishing`` until it ends, so a stopping worker
    waits for it."""
    task = asyncio.create_task(work)
    ctx.finishing.add(task)
    task.add_done_callback(ctx.finishing.discard)
    return task


async def shielded(ctx: WorkerContext, work: Coroutine[Any, Any, T]) -> T:
    """Run a write so that cancelling its caller cannot stop it halfway (on SQLite a
    transaction cut off mid-statement can keep the database's write lock)."""
    return await asyncio.shield(spawn(ctx, work))
