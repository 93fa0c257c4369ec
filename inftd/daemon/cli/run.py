"""``inftd run``: one daemon process, its roles (see ``process/roles.py``) run as tasks until
it is told to stop, and the API when it has that role."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack

from inftd.daemon.config import Settings
from inftd.daemon.events.push import PushDispatcher
from inftd.daemon.generation.scheduler import run_generation
from inftd.daemon.process.heartbeat import Facts, Heartbeat
from inftd.daemon.process.leader import Work
from inftd.daemon.process.roles import (
    HUB_ROLES,
    Elections,
    describe,
    indexer_role,
    relayer_role,
    roles_of,
)
from inftd.daemon.runtime import Runtime, open_runtime
from inftd.daemon.server.api.dev import DemoAccount
from inftd.daemon.server.app import start_api
from inftd.indexer.deployment import Deployment

log = logging.getLogger(__name__)


async def _worker(runtime: Runtime, beat: Heartbeat, stack: AsyncExitStack) -> dict[str, Work]:
    """The worker role: the generation service (stopped with its grace when the stack
    closes) and the push dispatcher."""
    service = await stack.enter_async_context(run_generation(runtime))

    async def running() -> Facts:
        return {"jobsRunning": len(service.dispatcher.running) if service else None}

    beat.set("worker", generation=service is not None)
    beat.probes["worker"] = running
    return {"push": PushDispatcher(runtime.engine, runtime.settings.push).run}


async def _roles(
    runtime: Runtime, roles: Sequence[str], beat: Heartbeat, stack: AsyncExitStack
) -> dict[str, Work]:
    """What each role of this process runs, as tasks to start."""
    elections = Elections(runtime, beat)
    work: dict[str, Work] = {}
    if "indexer" in roles:
        work["indexer"] = await indexer_role(elections)
    if "worker" in roles:
        work |= await _worker(runtime, beat, stack)
    if "relayer" in roles and (relayer := await relayer_role(elections)) is not None:
        work["relayer"] = relayer
    if HUB_ROLES & set(roles):
        work["hub"] = runtime.hub.run
    return work


async def _cancel(tasks: Sequence[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()  # their writes are transactions: cancelling one loses nothing
    await asyncio.gather(*tasks, return_exceptions=True)


async def serve(
    settings: Settings,
    deployment: Deployment,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] = lambda url: None,
    on_started: Callable[[Sequence[str]], None] = lambda roles: None,
    demo: Sequence[tuple[str, DemoAccount]] = (),
) -> None:
    """Run this process's roles (see roles.py) until ``stop`` is set; ``on_ready`` gets the
    API's URL when the process has the api role, ``on_started`` the roles once all run.
    On stop the generation worker gives its running jobs ``generation.shutdown_grace``."""
    roles = roles_of(settings)
    async with open_runtime(settings, deployment) as runtime, AsyncExitStack() as stack:
        beat = Heartbeat(
            runtime.engine, runtime.process_id, roles, settings.daemon.heartbeat_interval
        )
        await beat.forget_dead()
        stack.push_async_callback(beat.remove)  # last out: the process is gone
        work = await _roles(runtime, roles, beat, stack)
        tasks = [asyncio.create_task(w(stop), name=name) for name, w in work.items()]
        await beat.beat()
        tasks.append(asyncio.create_task(beat.run(), name="heartbeat"))
        stack.push_async_callback(_cancel, tasks)
        if "api" in roles:
            on_ready(await start_api(runtime, stack, demo))
        log.info("running roles %s as %s", describe(roles), runtime.process_id)
        # What start-up made (modules, SDKs, settings: some 265,000 objects) lives as long
        # as the process: out of the collector's sight, a full collection stops the loop
        # for well under a millisecond instead of ~130 ms (a p99 of every answer).
        gc.freeze()
        on_started(roles)
        await stop.wait()
        log.info("stopping")
