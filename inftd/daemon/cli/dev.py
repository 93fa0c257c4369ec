"""``inftd dev``: a local Anvil chain, the contracts, a SQLite database and the daemon, in one go.

The chain's state is kept in the data folder, so running it again resumes the same chain
and the same database. If the chain was lost (state file removed), a new deployment is
made and the old database is moved to ``<data_dir>/archive/``: never mixed with the new chain.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from pydantic import SecretStr

from inftd.daemon.cli.deploy import account_from_key, deploy_contracts
from inftd.daemon.cli.devnet import BUYER, DEPLOYER, FRIEND, MINTER, PROJECT_ROOT, Anvil
from inftd.daemon.cli.run import serve
from inftd.daemon.config import Settings
from inftd.daemon.errors import DaemonError
from inftd.daemon.runtime import check_chain
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


DEMO_ACCOUNTS = (("buyer", BUYER), ("friend", FRIEND))  # the console signs in as these
DEV_SECRETS = "dev-secrets.json"  # in the data folder: what ``inftd dev`` made up, kept
MADE_UP = ("webhook_secret", "operator_api_key", "auth_secret")  # made once, then reused
DEV_STATE_SYNC_INTERVAL = 30.0  # seconds between state anchoring rounds under inftd dev
DEV_TEMPLATE_DELAY = 0.03  # seconds between the template's words: streaming one can watch


def _made_up_secrets(data_dir: Path) -> dict[str, str]:
    """The secrets of this data folder's dev stack, made on its first run (mode 0600)."""
    path = data_dir / DEV_SECRETS
    if path.exists():
        stored: dict[str, str] = orjson.loads(path.read_bytes())
        if set(MADE_UP) <= set(stored):
            return stored
    made = {name: secrets.token_hex(32) for name in MADE_UP}
    data_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(orjson.dumps(made, option=orjson.OPT_INDENT_2))
    return made


def dev_settings(settings: Settings) -> Settings:
    """Every role of the dev stack on: the relayer with Anvil's minter key, state anchoring
    with its operator (deployer) key, the chain webhook and the operator API key with
    secrets made up once into the data folder. What the environment sets wins. Dev only:
    ``inftd run`` takes keys from the environment and nowhere else."""
    made = _made_up_secrets(settings.data_dir)
    keys = {"minter_key": MINTER.key, "operator_key": DEPLOYER.key, **made}
    update: dict[str, object] = {
        name: SecretStr(value) for name, value in keys.items() if getattr(settings, name) is None
    }
    update["relayer"] = settings.relayer.model_copy(
        update={"state_sync": True, "state_sync_interval": DEV_STATE_SYNC_INTERVAL}
    )
    if not settings.providers.template_delay:  # the template's text streams visibly
        update["providers"] = settings.providers.model_copy(
            update={"template_delay": DEV_TEMPLATE_DELAY}
        )
    return settings.model_copy(update=update)


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
        *_keys(settings, api_url),
        f"  Buy a {starter.name} package as the buyer:",
        f'    {cast} send {deployment.package_address} "purchasePackage(uint8)" {starter.id} '
        f"--value {value} --rpc-url {rpc_url} --private-key {BUYER.key}",
        "",
        "  Then ask its agent for a text on chain (token 1 is the first package bought):",
        f'    {cast} send {deployment.package_address} "requestGeneration(uint256,uint8,string)" '
        f'1 0 "a lighthouse at dawn" --rpc-url {rpc_url} --private-key {BUYER.key}',
        "",
    ]
    return "\n".join(lines)


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else "(off)"


def _keys(settings: Settings, api_url: str) -> list[str]:
    """The dev stack's roles and keys (Anvil's public ones, and those made up for it)."""
    minter = MINTER.address if settings.minter_key else "(off)"
    return [
        f"  Roles         indexer, worker, relayer (minter {minter}), state anchoring "
        f"every {settings.relayer.state_sync_interval:g} s, API",
        f"  Operator key  {_secret(settings.operator_api_key)}   "
        "(Authorization: Bearer <key>: acts for any owner)",
        f"  Webhook       POST {api_url}/v1/webhooks/chain, secret "
        f"{_secret(settings.webhook_secret)}",
        f"  Dev secrets   {(settings.data_dir / DEV_SECRETS).resolve()}   (inftd dev only)",
        "",
    ]


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
            demo=DEMO_ACCOUNTS,
        )
    finally:
        say("stopping Anvil")
        await asyncio.to_thread(anvil.stop)
