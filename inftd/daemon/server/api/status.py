"""Liveness and status: ``GET /health``, ``GET /v1/status``.

The status joins what the indexer (``inftd.indexer.status``), the processes' heartbeats
(``inftd.daemon.process.cluster``, also ``inftd status``'s), the live copies and this
process's generation worker report; the models here are its shape on the wire.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import text

import inftd
from inftd.daemon.process.cluster import cluster_report
from inftd.daemon.runtime import Runtime
from inftd.daemon.server.contract.routes import Answer, Routes
from inftd.daemon.server.contract.wire import HEX, Address, Count, Time, Unit, Wire
from inftd.daemon.server.http import RUNTIME
from inftd.indexer.rpc import RpcError
from inftd.indexer.status import indexer_report
from inftd.store.db import is_sqlite
from inftd.store.migrate import head_revision, revision_of

log = logging.getLogger(__name__)

META = "Health, status, metrics and this document"  # the meta tag's description
ROUTES = Routes("meta", META)
Up = Literal["ok", "unavailable"]
Role = Literal["indexer", "worker", "relayer", "api"]  # inftd.daemon.config.ROLES
NonNegative = Annotated[float, Field(ge=0)]


class Health(Wire):
    status: Up
    database: Up


class ChainStatus(Wire):
    chain_id: int
    ok: bool
    head_block: Count | None


class IndexerStatus(Wire):
    head_block: Count | None
    indexed_block: Count | None
    confirmed_block: int | None
    lag_blocks: int | None
    reorgs: Count
    deepest_reorg: Count
    pending_events: Count
    projection_problems: Count
    events_by_kind: dict[str, Count] = Field(description="Applied chain events by event name")
    halted: str | None
    failing: str | None
    webhook: dict[str, Count] = Field(description="Webhook logs by outcome, and requests refused")


class Deployment(Wire):
    chain_id: int
    package_address: Address
    generation_address: Address
    deploy_block: Count
    deploy_block_hash: Annotated[str, Field(pattern=HEX)]
    abi_version: str
    deployer: Address
    minter: Address
    operator: Address


class DatabaseStatus(Wire):
    backend: Literal["sqlite", "postgresql"]
    revision: str | None
    head_revision: str | None


class ThisProcess(Wire):
    id: str
    roles: list[Role]


class DaemonProcess(Wire):
    id: str = Field(description="host:pid:random")
    host: str
    pid: Count
    roles: list[Role]
    version: str
    started_at: Time
    heartbeat_at: Time
    age_seconds: NonNegative
    alive: bool = Field(description="its last heartbeat is within 3 of its intervals")
    facts: dict[str, dict[str, Any]] = Field(
        description="per role: state (leader, standby, off), jobsRunning, signer, inFlight, "
        "halted, failing"
    )


class IndexerRole(Wire):
    leader: str | None
    standbys: list[str]
    halted: str | None
    failing: str | None


class WorkerRole(Wire):
    alive: list[str]
    jobs_running: Count


class RelayerSigner(Wire):
    leader: str | None
    standbys: list[str]
    in_flight: Count | None


class RelayerRole(Wire):
    signers: dict[str, RelayerSigner] = Field(description="by minter address")


class ApiRole(Wire):
    alive: list[str]


class Roles(Wire):
    indexer: IndexerRole
    worker: WorkerRole
    relayer: RelayerRole
    api: ApiRole


class GenerationWorker(Wire):
    worker: str
    running: Count
    concurrency: Count


class ProbeOk(Wire):
    ok: Literal[True]
    latency_ms: NonNegative
    checked_at: Time


class ProbeFailed(Wire):
    ok: Literal[False]
    error: str = Field(description="The kind of failure")
    checked_at: Time


class ProviderStatus(Wire):
    healthy: bool = Field(description="May be called now")
    cooling_until: Time | None
    error_rate: Unit
    recent_calls: Count
    latency_ms: dict[str, NonNegative] = Field(
        description="Moving average of answered calls, by capability"
    )
    fails_in_a_row: Count
    in_flight: Count
    probe: ProbeOk | ProbeFailed | None


class LiveStatus(Wire):
    tracking: bool = Field(
        description="The hub tails the event log, so copies are kept (else every read goes "
        "to the database)"
    )
    agents: Count
    pages: Count
    bytes: Count
    budget_bytes: Count
    position: Count
    hits: Count
    misses: Count
    hit_rate: Unit | None
    reads: Count
    evictions: Count
    dropped: Count
    advanced: Count


class Status(Wire):
    version: str
    uptime_seconds: NonNegative
    chain: ChainStatus
    indexer: IndexerStatus
    deployment: Deployment
    database: DatabaseStatus
    process: ThisProcess
    processes: list[DaemonProcess]
    roles: Roles
    problems: list[str] = Field(
        description="what is unhealthy: no live indexer leader, jobs queued and no live "
        "worker... (empty when healthy)"
    )
    generation: GenerationWorker | None = Field(
        description="This process's generation worker; null when it runs none"
    )
    providers: dict[str, ProviderStatus] | None = Field(
        description="This process's providers by name; null when it runs no generation "
        "worker. The health is this process's view."
    )
    live: LiveStatus = Field(description="This process's copies of the agents it serves")


@ROUTES.get(
    "/health",
    "health",
    "Liveness: the process and its database",
    ok=(Answer("Up", Health), Answer("The database does not answer", Health, status=503)),
    limited=False,
)
async def health(request: web.Request) -> Health | web.Response:
    runtime = request.app[RUNTIME]
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        log.warning("health check: database unavailable: %s", exc)
        down = Health(status="unavailable", database="unavailable")
        return web.Response(body=down.to_json(), status=503, content_type="application/json")
    return Health(status="ok", database="ok")


async def chain_head(runtime: Runtime) -> int | None:
    try:
        return await runtime.rpc.head_number()
    except RpcError as exc:
        log.warning("status: chain unavailable: %s", exc)
        return None


async def status_document(runtime: Runtime) -> Status:
    head = await chain_head(runtime)
    async with runtime.engine.connect() as conn:
        revision = await revision_of(conn)
        report = await indexer_report(conn, head, runtime.settings.chain.confirmations)
        cluster = await cluster_report(conn)
    indexer = {
        **report.as_json(head),
        "halted": runtime.indexer.stats.halted,
        "failing": runtime.indexer.stats.failing,
        "webhook": dict(sorted(runtime.webhook_counts.items())),
    }
    generation = runtime.generation() if runtime.generation is not None else None
    return Status(
        version=inftd.__version__,
        uptime_seconds=round(time.monotonic() - runtime.started_at, 3),
        chain=ChainStatus(
            chain_id=runtime.deployment.chain_id, ok=head is not None, head_block=head
        ),
        indexer=IndexerStatus.model_validate(indexer),
        deployment=Deployment.model_validate(runtime.deployment, from_attributes=True),
        database=DatabaseStatus(
            backend="sqlite" if is_sqlite(runtime.settings.database) else "postgresql",
            revision=revision,
            head_revision=head_revision(),
        ),
        process=ThisProcess(id=runtime.process_id, roles=list(runtime.settings.daemon.roles)),
        processes=[DaemonProcess.model_validate(p) for p in cluster["processes"]],
        roles=Roles.model_validate(cluster["roles"]),
        problems=cluster["problems"],
        generation=None if generation is None else _worker(generation),
        providers=None if generation is None else _providers(generation),
        live=LiveStatus.model_validate(runtime.live.report()),
    )


def _worker(report: dict[str, Any]) -> GenerationWorker:
    return GenerationWorker(
        worker=report["worker"], running=report["running"], concurrency=report["concurrency"]
    )


def _providers(report: dict[str, Any]) -> dict[str, ProviderStatus]:
    return {name: ProviderStatus.model_validate(p) for name, p in report["providers"].items()}


class SharedStatus:
    """Requests that arrive while a status document is being built share that one, so a
    crowd of callers costs one chain call and one database connection, not one each."""

    def __init__(self) -> None:
        self._building: asyncio.Task[Status] | None = None

    async def get(self, runtime: Runtime) -> Status:
        if self._building is None or self._building.done():
            self._building = asyncio.ensure_future(status_document(runtime))
        # shield: one caller going away must not cancel the others' document
        return await asyncio.shield(self._building)


SHARED_STATUS = web.AppKey("shared_status", SharedStatus)


@ROUTES.get(
    "/v1/status",
    "status",
    "Chain, indexer, deployment and database status; the processes, their roles and "
    "heartbeats, what is unhealthy; this process's generation worker and its providers' health",
    ok=Answer("The status", Status),
)
async def status(request: web.Request) -> Status:
    return await request.app[SHARED_STATUS].get(request.app[RUNTIME])


def add_routes(app: web.Application) -> None:
    app[SHARED_STATUS] = SharedStatus()
    ROUTES.add_to(app)
