"""``inftd backfill``: index up to a block with a progress bar, then say what was done."""

from __future__ import annotations

import time

from inftd.daemon.cli.progress import BlockProgress
from inftd.daemon.config import Settings
from inftd.daemon.errors import ConfigError
from inftd.daemon.runtime import open_runtime
from inftd.indexer.deployment import Deployment


async def backfill(settings: Settings, from_block: int | None, to_block: int | None) -> str:
    if from_block is not None and from_block < 0:
        raise ConfigError("--from-block", f"must be a block number, got {from_block}")
    if to_block is not None and from_block is not None and to_block < from_block:
        raise ConfigError("--to-block", f"{to_block} is before --from-block {from_block}")
    deployment = Deployment.read(settings.deployment_path)
    async with open_runtime(settings, deployment) as runtime:
        indexer = runtime.indexer
        if from_block is not None:
            await indexer.start_at(from_block)
        cursor = await indexer.cursor()
        progress = BlockProgress(cursor.number if cursor else deployment.deploy_block)
        began = time.monotonic()
        reached = await indexer.sync_once(target=to_block, progress=progress)
        progress.finish()
        elapsed = max(time.monotonic() - began, 1e-9)
        stats = indexer.stats
        blocks = reached - progress.start
        return (
            f"indexed to block {reached}: {blocks} blocks, {stats.stored} events stored, "
            f"{sum(stats.applied.values())} applied, {stats.problems} problems, "
            f"{stats.reorgs} reorgs in {elapsed:.1f} s "
            f"({blocks / elapsed:,.0f} blocks/s, {stats.stored / elapsed:,.0f} events/s)"
        )
