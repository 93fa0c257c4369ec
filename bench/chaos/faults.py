"""What a chaos run does to the system while the workload runs: SIGKILLs and restarts of
daemon processes, chain reorgs, RPC faults between the daemons and Anvil, and provider
faults. Each is one loop that sleeps a random while and strikes, until ``stop``."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

from bench.chaos.daemons import SUPERVISOR_ATTEMPTS, DaemonError
from bench.chaos.gate import MiningGate, holes, node_quiet
from bench.chaos.world import World
from inftd.daemon.cli.devnet import rpc_call
from tests.support.fakes.generation import Fault, script_of

RPC_KINDS = ("429", "500", "502", "stall", "truncate", "garbage", "reset")
MAX_QUEUED = 3  # RPC faults waiting in the proxy at most: fewer than a start's RPC tries
MAX_REORG_DEPTH = 48  # blocks: well inside the daemons' reorg window (see world.py)


@dataclass
class Strikes:
    kills: int = 0
    restarts: int = 0
    failed_starts: int = 0  # a start that met a fault and exited: the supervisor retried
    reorgs: int = 0
    reorg_blocks: int = 0  # blocks dropped by reorgs, in all
    deepest_reorg: int = 0
    reorgs_skipped: int = 0  # no block after the deployment to replace yet
    reorgs_unquiet: int = 0  # the node kept mining: a reorg then would race it (gate.py)
    node_holes: int = 0  # block numbers Anvil lost in a reorg all the same (gate.py)
    rpc_bursts: Counter[str] = field(default_factory=Counter)  # queued by kind
    provider: Counter[str] = field(default_factory=Counter)  # scripted "provider kind"


async def kills(world: World, stop: asyncio.Event, rng: random.Random, s: Strikes) -> None:
    """SIGKILL a random daemon every few seconds, and start it again a moment later."""
    daemons = world.daemons
    while not await _pause(stop, rng.uniform(3.0, 8.0)):
        index = rng.randrange(len(daemons.daemons))
        if not daemons.daemons[index].alive:
            continue  # still down after failed starts: calm() brings it back at the end
        daemons.kill(index)
        s.kills += 1
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        try:
            s.failed_starts += await asyncio.to_thread(daemons.revive, index)
            s.restarts += 1
        except DaemonError:
            s.failed_starts += SUPERVISOR_ATTEMPTS


def _head(url: str) -> int:
    return int(rpc_call(url, "eth_blockNumber"), 16)


async def reorgs(world: World, stop: asyncio.Event, rng: random.Random, s: Strikes) -> None:
    """``anvil_reorg``: the last blocks replaced by empty ones in one step on the node, then
    one more block, as a longer branch would come; the daemons see the blocks they indexed
    replaced. (``evm_snapshot``/``evm_revert`` raced the workload's transactions: a block
    mined between reading the head and the revert left the node's logs inconsistent.)
    Each reorg closes the gate first (see gate.py). With confirmations, a reorg stays
    shallower than them (the shape they are set for)."""
    deepest = world.confirmations - 1 if world.confirmations else MAX_REORG_DEPTH
    while not await _pause(stop, rng.uniform(2.0, 6.0)):
        floor = world.deployment.deploy_block
        depth = rng.randint(1, deepest)
        await asyncio.to_thread(reorg_once, world.chain.url, world.gate, floor, depth, s)


def reorg_once(url: str, gate: MiningGate, floor: int, wanted: int, s: Strikes) -> None:
    """A reorg of up to ``wanted`` blocks above ``floor``, with the gate closed."""
    with gate.closed():
        if not node_quiet(url):
            s.reorgs_unquiet += 1
            return
        head = _head(url)
        depth = min(wanted, head - floor)
        if depth < 1:
            s.reorgs_skipped += 1
            return
        rpc_call(url, "anvil_reorg", [depth, []])
        rpc_call(url, "evm_mine")
        # the dropped transactions Anvil put back in its pool: mined before the gate opens
        node_quiet(url)
        s.node_holes += len(holes(url, head - depth))
    s.reorgs += 1
    s.reorg_blocks += depth
    s.deepest_reorg = max(s.deepest_reorg, depth)


async def rpc_faults(world: World, stop: asyncio.Event, rng: random.Random, s: Strikes) -> None:
    """Bursts of one kind of fault on top of the proxy's steady random rate."""
    while not await _pause(stop, rng.uniform(1.0, 4.0)):
        if world.proxy.queued >= MAX_QUEUED:
            continue  # no daemon is reading (killed): faults would pile up for its start
        kind = rng.choice(RPC_KINDS)
        count = rng.randint(1, MAX_QUEUED)
        world.proxy.fail_next(count, kind, retry_after=1, seconds=rng.uniform(0.2, 2.0))
        s.rpc_bursts[kind] += count


def _provider_fault(rng: random.Random) -> tuple[str, Fault]:
    choice = rng.randrange(5)
    if choice == 0:
        return "429", Fault.status(429, retry_after=1)
    if choice == 1:
        return "500", Fault.status(500)
    if choice == 2:
        return "stall", Fault.stall(rng.uniform(0.5, 4.0))
    if choice == 3:
        return "malformed", Fault.malformed()
    return "truncated", Fault.truncated()


async def provider_faults(
    world: World, stop: asyncio.Event, rng: random.Random, s: Strikes
) -> None:
    while not await _pause(stop, rng.uniform(0.5, 2.0)):
        name = rng.choice(sorted(world.providers.apps))
        kind, fault = _provider_fault(rng)
        for _ in range(rng.randint(1, 3)):
            script_of(world.providers.apps[name]).fail_next(fault)
            s.provider[f"{name} {kind}"] += 1


def calm(world: World) -> None:
    """No more faults: the proxy forwards everything, the fakes answer everything."""
    world.proxy.fault_rate = 0.0
    world.proxy.fault_filter = lambda request: False  # queued faults never apply now
    for app in world.providers.apps.values():
        script_of(app).faults.clear()


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds``, or less if ``stop`` is set; whether it is set."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True
