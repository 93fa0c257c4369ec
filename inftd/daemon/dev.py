"""``inftd dev``: a local Anvil chain, the contracts, a SQLite database and the daemon, in one go.

The chain's state is kept in the data folder, so running it again resumes the same chain
and the same database. If the chain was lost (state file removed), a new deployment is
made and the old database is moved to ``<data_dir>/archive/``: never mixed with the new chain.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from inftd.daemon.config import Settings
from inftd.daemon.deploy import account_from_key, deploy_contracts
from inftd.daemon.devnet import BUYER, DEPLOYER, FRIEND, MINTER, PROJECT_ROOT, Anvil
from inftd.daemon.errors import DaemonError
from inftd.daemon.runtime import check_chain
from inftd.daemon.server import serve
from inftd.indexer.deployment import Deployment
from inftd.indexer.errors import DeploymentError
from inftd.indexer.rpc import ChainRpc
from inftd.store import migrate
from inftd.store.binding import bind_chain
from inftd.store.db import create_async, is_sqlite
from inftd.store.errors import ChainMismatchError

log = logging.getLogger(__name__)

Say = Callable[[str], None]


async def _reusable(path: Path, rpc: ChainRpc) -> Deployment | None:
    try:
        deployment = Deployment.read(path)
        await check_chain(rpc, deployment)
    except (DeploymentError, DaemonError):
        return None
    return deployment


async def dev_deployment(settings: Settings, rpc_url: str, say: Say) -> Deployment:
    rpc = ChainRpc([rpc_url])
    try:
        existing = await _reusable(settings.deployment_path, rpc)
    finally:
        await rpc.close()
    if existing:
        say(f"resuming the chain and contracts in {settings.data_dir}")
        return existing
    say("deploying the contracts to the local chain")
    deployment = await asyncio.to_thread(
        deploy_contracts,
        rpc_url,
        account_from_key(DEPLOYER.key, "the Anvil deployer key"),
        minter=MINTER.address,
        operator=DEPLOYER.address,
        packages=settings.packages,
        credit_price_wei=settings.credit_price_wei,
        progress=lambda line: say(f"  {line}"),
    )
    deployment.write(settings.deployment_path)
    return deployment


def _archive_sqlite(settings: Settings, say: Say) -> None:
    database = settings.data_dir / "inftd.db"
    archive = settings.data_dir / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        source = database.with_name(database.name + suffix)
        if source.exists():
            shutil.move(source, archive / f"inftd-{stamp}.db{suffix}")
    say(f"the database belonged to an earlier chain: moved it to {archive}")


async def prepare_database(settings: Settings, deployment: Deployment, say: Say) -> None:
    """Migrate, and bind the database to this chain; an old chain's database is archived."""
    for attempt in (1, 2):
        await asyncio.to_thread(migrate.upgrade, settings.database)
        engine = create_async(settings.database)
        try:
            await bind_chain(engine, deployment.identity())
            say(f"database ready at revision {migrate.head_revision()}")
            return
        except ChainMismatchError:
            if attempt == 2 or settings.database_url is not None:
                raise
        finally:
            await engine.dispose()
        _archive_sqlite(settings, say)


def banner(settings: Settings, deployment: Deployment, api_url: str, rpc_url: str) -> str:
    cast = PROJECT_ROOT / "node_modules" / ".bin" / "cast"
    starter = settings.packages[0]
    value = str(starter.price_wei)
    lines = [
        "",
        "inftd dev is running. Ctrl-C stops everything it started.",
        "",
        f"  API           {api_url}   (GET /health, GET /v1/status)",
        f"  Chain RPC     {rpc_url}   (Anvil, chain id {deployment.chain_id})",
        f"  Data folder   {settings.data_dir.resolve()}",
        f"  Database      {settings.database if is_sqlite(settings.database) else 'PostgreSQL'}",
        "",
        "  Contracts",
        f"    INFTPackage    {deployment.package_address}",
        f"    GenerationNFT  {deployment.generation_address}",
        "",
        "  Demo accounts (Anvil's public test keys, 10000 ETH each; never use them elsewhere)",
        f"    buyer   {BUYER.address}  key {BUYER.key}",
        f"    friend  {FRIEND.address}  key {FRIEND.key}",
        "",
        "  Packages",
        *(
            f"    {p.id}  {p.name:<10} {p.price_wei / 10**18:g} ETH  {p.credits} credits"
            for p in settings.packages
        ),
        "",
        f"  Buy a {starter.name} package as the buyer:",
        f'    {cast} send {deployment.package_address} "purchasePackage(uint8)" {starter.id} '
        f"--value {value} --rpc-url {rpc_url} --private-key {BUYER.key}",
        "",
    ]
    return "\n".join(lines)


async def run_dev(settings: Settings, stop: asyncio.Event, say: Say) -> None:
    anvil_dir = settings.data_dir / "anvil"
    anvil_dir.mkdir(parents=True, exist_ok=True)
    anvil = Anvil(state_file=anvil_dir / "state.json", log_file=anvil_dir / "anvil.log")
    say(f"starting Anvil (state in {anvil_dir})")
    await asyncio.to_thread(anvil.start)
    try:
        deployment = await dev_deployment(settings, anvil.url, say)
        await prepare_database(settings, deployment, say)
        urls = [anvil.url, anvil.url.replace("http://", "ws://")]  # Anvil serves both
        settings = settings.model_copy(
            update={"chain": settings.chain.model_copy(update={"rpc_urls": urls})}
        )
        await serve(
            settings,
            deployment,
            stop,
            on_ready=lambda url: say(banner(settings, deployment, url, anvil.url)),
        )
    finally:
        say("stopping Anvil")
        await asyncio.to_thread(anvil.stop)
