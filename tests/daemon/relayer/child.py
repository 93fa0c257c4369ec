"""A relayer in its own process that SIGKILLs itself at one point (``KillAt``):
``python -m tests.daemon.relayer.child DATABASE_URL RPC_URL DEPLOYMENT_FILE POINT``.

It exits 0 if it settles without reaching the point, which the test takes as a failure.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eth_account import Account

from inftd.daemon.cli.devnet import MINTER
from inftd.daemon.config import RelayerSettings
from inftd.daemon.relayer.chain import MintChain
from inftd.daemon.relayer.context import Context, Hooks
from inftd.daemon.relayer.relayer import Relayer
from inftd.daemon.relayer.store import Attempt, NewAttempt
from inftd.indexer.deployment import Deployment
from inftd.indexer.rpc import ChainRpc
from inftd.store.db import create_async

ROUNDS = 200


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(Hooks):
    def __init__(self, point: str) -> None:
        self.point = point

    async def after_store(self, attempts: Sequence[NewAttempt]) -> None:
        if self.point == "after_store":
            die()

    async def after_broadcast(self, tx_hashes: Sequence[str]) -> None:
        if self.point == "after_broadcast" and tx_hashes:
            die()

    async def after_receipt(self, attempt: Attempt, receipt: dict[str, Any]) -> None:
        if self.point == "after_receipt":
            die()


async def main(database_url: str, rpc_url: str, deployment_file: str, point: str) -> None:
    deployment = Deployment.read(Path(deployment_file))
    engine = create_async(database_url)
    rpc = ChainRpc([rpc_url])
    ctx = Context(
        engine=engine,
        chain=MintChain(rpc, deployment, 16),
        account=Account.from_key(MINTER.key),
        settings=RelayerSettings(poll_interval=0.01),
        chain_id=deployment.chain_id,
        confirmations=0,
        hooks=KillAt(point),
    )
    relayer = Relayer(ctx)
    try:
        for _ in range(ROUNDS):
            await relayer.step()
            if await relayer.unsettled() == 0:
                break
    finally:
        await relayer.close()
        await rpc.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
