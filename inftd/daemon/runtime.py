"""The daemon's long-lived resources, opened once, checked, and closed in reverse order."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.agents.embeddings import Embedder
from inftd.agents.live import LiveAgents
from inftd.agents.writer import AgentWriter
from inftd.daemon.auth.tokens import TokenSigner
from inftd.daemon.config import Settings
from inftd.daemon.errors import DaemonError
from inftd.daemon.events.hub import Hub
from inftd.daemon.providers.embedders import build_embedder, close_embedder
from inftd.indexer.deployment import Deployment
from inftd.indexer.follower import Indexer, IndexerConfig
from inftd.indexer.rpc import ChainRpc
from inftd.indexer.webhook import ReplayGuard, WebhookIngest
from inftd.store.binding import bind_chain
from inftd.store.db import create_async
from inftd.store.migrate import require_head

log = logging.getLogger(__name__)


def process_id() -> str:
    """host:pid:random, unique even when a pid is reused."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Runtime:
    settings: Settings
    deployment: Deployment
    engine: AsyncEngine
    rpc: ChainRpc
    indexer: Indexer
    webhooks: WebhookIngest
    tokens: TokenSigner  # signs and checks sign-in bearer tokens
    hub: Hub
    live: LiveAgents  # this process's copies of the agents it serves
    embedder: Embedder  # memories' vectors, built from settings.memory
    replay_guard: ReplayGuard = field(default_factory=ReplayGuard)
    webhook_counts: Counter[str] = field(default_factory=Counter)
    started_at: float = field(default_factory=time.monotonic)
    process_id: str = field(default_factory=process_id)  # its row in daemon_processes
    generation: Callable[[], dict[str, Any]] | None = None  # the generation worker's report
    writer: AgentWriter = field(init=False)  # one writer at a time per agent

    def __post_init__(self) -> None:
        self.writer = AgentWriter(self.engine)


def indexer_config(settings: Settings) -> IndexerConfig:
    chain = settings.chain
    return IndexerConfig(
        window=chain.reorg_window,
        confirmations=chain.confirmations,
        poll_interval=chain.poll_interval,
        concurrency=chain.log_concurrency,
        initial_range=chain.initial_log_range,
        ws_url=chain.ws_url,
    )


async def check_chain(rpc: ChainRpc, deployment: Deployment) -> None:
    """The RPC must serve the deployment's chain, with the deployment's block in it."""
    chain_id = await rpc.chain_id()
    if chain_id != deployment.chain_id:
        raise DaemonError(
            f"RPC serves chain {chain_id}, deployment is on chain {deployment.chain_id}"
        )
    block = await rpc.block(deployment.deploy_block)
    if block is None or block.hash != deployment.deploy_block_hash:
        found = block.hash if block else "no block"
        raise DaemonError(
            f"the chain has {found} at block {deployment.deploy_block}, the deployment file "
            f"says {deployment.deploy_block_hash}: the deployment is not on this chain"
        )


@asynccontextmanager
async def open_runtime(settings: Settings, deployment: Deployment) -> AsyncIterator[Runtime]:
    embedder = build_embedder(settings)  # first: a missing key fails before anything opens
    engine = create_async(settings.database)
    rpc = ChainRpc(settings.chain.http_urls)
    try:
        await require_head(engine)
        await check_chain(rpc, deployment)
        await bind_chain(engine, deployment.identity())
        indexer = Indexer(rpc, engine, deployment, indexer_config(settings))
        live = LiveAgents(engine, settings.live.memory)
        hub = Hub(engine, live, settings.api.hub_poll_interval)
        indexer.on_commit = hub.poke
        webhooks = WebhookIngest(rpc, engine, indexer.decoder, deployment.chain_id)
        yield Runtime(
            settings=settings,
            deployment=deployment,
            engine=engine,
            rpc=rpc,
            indexer=indexer,
            webhooks=webhooks,
            tokens=TokenSigner.from_settings(settings),
            hub=hub,
            live=live,
            embedder=embedder,
        )
    finally:
        await close_embedder(embedder)
        await rpc.close()
        await engine.dispose()
