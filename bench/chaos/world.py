"""Everything a chaos run stands on: Anvil with the contracts, the fault-injecting RPC proxy
between the daemons and Anvil, fake AI providers with scripted faults, and the daemons.

The workload and the invariant checks talk to Anvil directly; only the daemons go through
the proxy. The fakes are the project's test fakes (``tests/support/fakes``): they speak
OpenAI's and Gemini's wire formats, so the daemon's real provider clients and router run.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from eth_account import Account

from bench.chaos.daemons import DaemonProcess, DaemonSet
from bench.chaos.gate import MiningGate
from inftd.daemon.cli.devnet import MINTER, Anvil, DevAccount
from inftd.indexer.deployment import Deployment
from inftd.store import migrate
from inftd.store.db import sqlite_url
from tests.support.contracts import deploy_dev
from tests.support.fakes import gemini, openai
from tests.support.fakes.server import Fake, serve
from tests.support.faultproxy import FaultProxy

MNEMONIC = "test test test test test test test test test test test junk"  # Anvil's, public
USER_INDEXES = (1, 2, 4, 5, 6, 7, 8, 9)  # 0 deploys, 3 is the relayer's minter key
OPENAI_KEY = "sk-chaos"
GEMINI_KEY = "gemini-chaos"
OPERATOR_API_KEY = "chaos-operator-key"
AUTH_SECRET = "chaos-auth-secret-shared-by-restarts"  # tokens survive a daemon's restart
WEBHOOK_SECRET = "chaos-webhook-secret"

# The daemons' settings: quick loops, short leases and timeouts, so that a SIGKILLed job
# is taken again and a stalled provider given up within the run's seconds.
DAEMON_ENV = {
    "INFTD_CHAIN__POLL_INTERVAL": "0.3",
    "INFTD_CHAIN__REORG_WINDOW": "64",
    "INFTD_GENERATION__POLL_INTERVAL": "0.3",
    "INFTD_GENERATION__LEASE": "4",
    "INFTD_GENERATION__BACKOFF_BASE": "0.2",
    "INFTD_GENERATION__BACKOFF_MAX": "1",
    "INFTD_GENERATION__MAX_ATTEMPTS": "5",
    "INFTD_GENERATION__JOB_TIMEOUT": "20",
    "INFTD_GENERATION__SHUTDOWN_GRACE": "1",
    "INFTD_GENERATION__PROBE_INTERVAL": "0",
    "INFTD_RELAYER__POLL_INTERVAL": "0.3",
    "INFTD_RELAYER__BACKOFF_BASE": "0.5",
    "INFTD_RELAYER__BACKOFF_MAX": "2",
    "INFTD_RELAYER__MAX_ATTEMPTS": "20",
    "INFTD_RELAYER__GAP_GRACE": "1",
    "INFTD_PROVIDERS__TIMEOUT": "2",
    "INFTD_PROVIDERS__IMAGE_TIMEOUT": "3",
    "INFTD_ROUTING__COOLDOWN_BASE": "0.2",
    "INFTD_ROUTING__COOLDOWN_MAX": "1",
    "INFTD_ROUTING__TIMEOUT_GRACE": "1",
    "INFTD_ROUTING__CACHE": "false",
    "INFTD_API__RATE_PER_IP": "10000",
    "INFTD_API__RATE_PER_ADDRESS": "10000",
    "INFTD_PUSH__ALLOW_PRIVATE_TARGETS": "true",
}


def users() -> list[DevAccount]:
    """Anvil's unlocked accounts the workload acts as (keys to sign in with)."""
    Account.enable_unaudited_hdwallet_features()
    found = []
    for index in USER_INDEXES:
        account = Account.from_mnemonic(MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
        found.append(DevAccount(account.address, "0x" + bytes(account.key).hex()))
    return found


# Block states Anvil keeps, in memory only: the reorgs (faults.MAX_REORG_DEPTH) and the
# relayer's replays at a receipt's block stay far inside. With its default disk cache,
# Anvil rolled back to an empty state once the chain passed ~1,000 blocks (devnet.Anvil).
NODE_STATES = 512


@dataclass
class Providers:
    """The fake providers' apps (to script faults on) and their base URLs."""

    apps: dict[str, web.Application] = field(default_factory=dict)
    urls: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {
            "INFTD_OPENAI_API_KEY": OPENAI_KEY,
            "INFTD_PROVIDERS__OPENAI_BASE_URL": self.urls["openai"] + "/v1",
            "INFTD_GEMINI_API_KEY": GEMINI_KEY,
            "INFTD_PROVIDERS__GEMINI_BASE_URL": self.urls["gemini"] + "/",
        }


@asynccontextmanager
async def fake_providers() -> AsyncIterator[Providers]:
    found = Providers()
    openai_app = openai.create_app(Fake(key=OPENAI_KEY))  # with chat and images
    gemini_app = gemini.create_app(Fake(key=GEMINI_KEY))
    async with serve(openai_app) as openai_url, serve(gemini_app) as gemini_url:
        found.apps = {"openai": openai_app, "gemini": gemini_app}
        found.urls = {"openai": openai_url, "gemini": gemini_url}
        yield found


@dataclass
class World:
    chain: Anvil
    deployment: Deployment
    proxy: FaultProxy
    providers: Providers
    daemons: DaemonSet
    database_url: str
    work_dir: Path
    users: list[DevAccount]
    gate: MiningGate
    confirmations: int = 0  # the daemons' chain.confirmations


def daemon_env(
    proxy_url: str, database_url: str, deployment_file: Path, providers: Providers
) -> dict[str, str]:
    return {
        **DAEMON_ENV,
        **providers.env(),
        "INFTD_DATABASE_URL": database_url,
        "INFTD_CHAIN__RPC_URLS": proxy_url,
        "INFTD_CHAIN__DEPLOYMENT_FILE": str(deployment_file),
        "INFTD_MINTER_KEY": MINTER.key,
        "INFTD_OPERATOR_API_KEY": OPERATOR_API_KEY,
        "INFTD_AUTH_SECRET": AUTH_SECRET,
        "INFTD_WEBHOOK_SECRET": WEBHOOK_SECRET,
    }


@asynccontextmanager
async def open_world(
    work_dir: Path,
    *,
    database_url: str | None = None,
    processes: int = 1,
    seed: int = 0,
    rpc_fault_rate: float = 0.0,
    daemon_args: list[list[str]] | None = None,
    confirmations: int = 0,
) -> AsyncIterator[World]:
    """Anvil, the contracts, the proxy, the fakes and ``processes`` daemons, started;
    everything stopped again on exit (the work folder is kept for reading)."""
    await asyncio.to_thread(work_dir.mkdir, parents=True, exist_ok=True)
    database_url = database_url or sqlite_url(work_dir / "inftd.db")
    async with AsyncExitStack() as stack:
        chain = stack.enter_context(
            Anvil(log_file=work_dir / "anvil.log", states_in_memory=NODE_STATES)
        )
        deployment = await asyncio.to_thread(deploy_dev, chain.url)
        deployment_file = work_dir / "deployment.json"
        deployment.write(deployment_file)
        await asyncio.to_thread(migrate.upgrade, database_url)
        gate = MiningGate()
        proxy = await stack.enter_async_context(
            FaultProxy(chain.url, fault_rate=rpc_fault_rate, seed=seed, hold=gate.for_request)
        )
        providers = await stack.enter_async_context(fake_providers())
        env = daemon_env(proxy.url, database_url, deployment_file, providers)
        env["INFTD_CHAIN__CONFIRMATIONS"] = str(confirmations)
        args = daemon_args or [[] for _ in range(processes)]
        daemons = DaemonSet(
            [
                DaemonProcess(f"daemon-{i}", work_dir / f"daemon-{i}", env, extra)
                for i, extra in enumerate(args)
            ]
        )
        await asyncio.to_thread(daemons.start)
        stack.callback(daemons.stop)
        yield World(
            chain,
            deployment,
            proxy,
            providers,
            daemons,
            database_url,
            work_dir,
            users(),
            gate,
            confirmations,
        )


def remove(work_dir: Path) -> None:
    shutil.rmtree(work_dir, ignore_errors=True)
