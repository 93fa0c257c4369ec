"""Liveness and status: ``GET /health``, ``GET /v1/status``."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web
from sqlalchemy import text

import inftd
from inftd.daemon.process.cluster import cluster_report
from inftd.daemon.runtime import Runtime
from inftd.daemon.server.http import RUNTIME, json_response
from inftd.indexer.rpc import RpcError
from inftd.indexer.status import indexer_report
from inftd.store.db import is_sqlite
from inftd.store.migrate import head_revision, revision_of

log = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("health check: database unavailable: %s", exc)
        return json_response({"status": "unavailable", "database": "unavailable"}, 503)
    return json_response({"status": "ok", "database": "ok"})


async def chain_head(runtime: Runtime) -> int | None:
    try:
        return await runtime.rpc.head_number()
    except RpcError as exc:
        log.warning("status: chain unavailable: %s", exc)
        return None


async def status_document(runtime: Runtime) -> dict[str, Any]:
    head = await chain_head(runtime)
    async with runtime.engine.connect() as conn:
        revision = await revision_of(conn)
        report = await indexer_report(conn, head, runtime.settings.chain.confirmations)
        cluster = await cluster_report(conn)
    indexer = report.as_json(head)
    indexer["halted"] = runtime.indexer.stats.halted
    indexer["failing"] = runtime.indexer.stats.failing
    indexer["webhook"] = dict(sorted(runtime.webhook_counts.items()))
    generation = runtime.generation() if runtime.generation is not None else None
    return {
        "version": inftd.__version__,
        "uptimeSeconds": round(time.monotonic() - runtime.started_at, 3),
        "chain": {
            "chainId": runtime.deployment.chain_id,
            "ok": head is not None,
            "headBlock": head,
        },
        "indexer": indexer,
        "deployment": runtime.deployment.model_dump(by_alias=True),
        "database": {
            "backend": "sqlite" if is_sqlite(runtime.settings.database) else "postgresql",
            "revision": revision,
            "headRevision": head_revision(),
        },
        "process": {"id": runtime.process_id, "roles": list(runtime.settings.daemon.roles)},
        "processes": cluster["processes"],
        "roles": cluster["roles"],
        "problems": cluster["problems"],
        # This process's generation worker and its providers; null where none runs.
        "generation": None if generation is None else _worker(generation),
        "providers": None if generation is None else generation["providers"],
        "live": runtime.live.report(),  # this process's copies of the agents it serves
    }


def _worker(report: dict[str, Any]) -> dict[str, Any]:
    return {key: report[key] for key in ("worker", "running", "concurrency")}


class SharedStatus:
    """Requests that arrive while a status document is being built share that one, so a
    crowd of callers costs one chain call and one database connection, not one each."""

    def __init__(self) -> None:
        self._building: asyncio.Task[dict[str, Any]] | None = None

    async def get(self, runtime: Runtime) -> dict[str, Any]:
        if self._building is None or self._building.done():
            self._building = asyncio.ensure_future(status_document(runtime))
        # shield: one caller going away must not cancel the others' document
        return await asyncio.shield(self._building)


SHARED_STATUS = web.AppKey("shared_status", SharedStatus)


async def status(request: web.Request) -> web.Response:
    return json_response(await request.app[SHARED_STATUS].get(request.app[RUNTIME]))


def add_routes(app: web.Application) -> None:
    app[SHARED_STATUS] = SharedStatus()
    app.router.add_get("/health", health)
    app.router.add_get("/v1/status", status)
