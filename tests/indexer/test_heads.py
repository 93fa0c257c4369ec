from __future__ import annotations

import asyncio

from inftd.daemon.cli.devnet import Anvil, free_port, rpc_call
from inftd.indexer.heads import watch_new_heads


async def test_each_new_head_wakes_the_follower(anvil: Anvil) -> None:
    wake, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(watch_new_heads(anvil.url.replace("http", "ws"), wake, stop))
    try:
        for _ in range(2):
            await asyncio.sleep(0.3)  # let the subscription settle
            wake.clear()
            await asyncio.to_thread(rpc_call, anvil.url, "evm_mine")
            await asyncio.wait_for(wake.wait(), 10)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_an_unreachable_socket_is_retried_until_stopped() -> None:
    wake, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(watch_new_heads(f"ws://127.0.0.1:{free_port()}", wake, stop))
    await asyncio.sleep(0.5)
    assert not task.done()  # network faults never end the watcher
    stop.set()
    await asyncio.wait_for(task, 40)
    assert not wake.is_set()
