"""Mint relayer benchmark: mints per second to Anvil, pipelined nonces against one at a time.

    .venv/bin/python -m bench.mints [--quick] [--out FILE]

One fresh Anvil, the contracts deployed as ``inftd deploy`` does, one package bought and
indexed into a fresh SQLite file per run. Each run hands N succeeded generations to the
relayer at once (``add_mint``, as the queue's worker does) and drives
``inftd.daemon.relayer.Relayer`` round after round, with no sleep between rounds, until
every mint is confirmed; the clock runs from the first round to the last confirmation.

- pipelined: the relayer as configured by default (up to 64 nonces in flight, 32 signed and
  stored per transaction);
- send-and-wait: the same code with one nonce in flight: sign, store, send, wait for the
  receipt, then the next.

Both on two chains, the same Anvil: automine (a block per transaction, at once) and 1 s
blocks (interval mining, as a real chain has). It prints a Markdown table and writes it to
bench/RESULTS-mints.md. Figures only: nothing here is a pass/fail test.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eth_account import Account
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from web3 import Web3
from web3.types import TxParams, Wei

from inftd.daemon.cli.devnet import (
    BUYER,
    MINTER,
    PROJECT_ROOT,
    Anvil,
    foundry_binary,
    rpc_call,
)
from inftd.daemon.config import DEFAULT_PACKAGES, RelayerSettings
from inftd.daemon.generation.mints import add_mint
from inftd.daemon.relayer.chain import MintChain
from inftd.daemon.relayer.context import Context
from inftd.daemon.relayer.relayer import Relayer
from inftd.indexer.abi import load_artifact
from inftd.indexer.deployment import Deployment
from inftd.indexer.follower import Indexer, IndexerConfig
from inftd.indexer.rpc import ChainRpc
from inftd.store import migrate
from inftd.store.db import create_async, sqlite_url
from inftd.store.models import Generation, Mint, MintAttempt, table_of
from tests.support.contracts import deploy_dev

RESULTS_FILE = PROJECT_ROOT / "bench" / "RESULTS-mints.md"
BLOCK_SECONDS = 1  # interval mining of the "1 s blocks" chain
MAX_ROUNDS = 100_000  # a run that needs more has gone wrong


@dataclass(frozen=True)
class Plan:
    chain: str  # "automine" or "1 s blocks"
    mode: str  # "pipelined" or "send-and-wait"
    mints: int


@dataclass(frozen=True)
class Result:
    plan: Plan
    seconds: float
    blocks: int
    transactions: int
    rounds: int

    @property
    def per_second(self) -> float:
        return self.plan.mints / self.seconds


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.mints", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small runs (about a minute)")
    parser.add_argument("--out", type=Path, default=RESULTS_FILE, help="where the table goes")
    return parser.parse_args(argv)


def plans(quick: bool) -> list[Plan]:
    auto, auto_wait, blocks, blocks_wait = (40, 40, 40, 5) if quick else (500, 200, 300, 20)
    return [
        Plan("automine", "pipelined", auto),
        Plan("automine", "send-and-wait", auto_wait),
        Plan("1 s blocks", "pipelined", blocks),
        Plan("1 s blocks", "send-and-wait", blocks_wait),
    ]


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def setup_chain(url: str) -> tuple[Deployment, int]:
    deployment = deploy_dev(url)  # the tests' deployment: same keys, packages and prices
    w3 = Web3(Web3.HTTPProvider(url))
    address = Web3.to_checksum_address(deployment.package_address)
    package = w3.eth.contract(address, abi=load_artifact("INFTPackage").abi)
    buyer = Web3.to_checksum_address(BUYER.address)
    paid: TxParams = {"from": buyer, "value": Wei(DEFAULT_PACKAGES[0].price_wei)}
    tx = package.functions.purchasePackage(0).transact(paid)
    w3.eth.wait_for_transaction_receipt(tx)
    return deployment, int(package.functions.lastTokenId().call())


def set_mining(url: str, chain: str) -> None:
    if chain == "automine":
        rpc_call(url, "evm_setIntervalMining", [0])
        rpc_call(url, "evm_setAutomine", [True])
    else:
        rpc_call(url, "evm_setAutomine", [False])
        rpc_call(url, "evm_setIntervalMining", [BLOCK_SECONDS])


def relayer_settings(mode: str) -> RelayerSettings:
    if mode == "pipelined":
        return RelayerSettings()
    return RelayerSettings(max_in_flight=1, batch=1)


async def hand_over(engine: AsyncEngine, token: int, count: int) -> None:
    """``count`` succeeded generations, each with its pending mint, in one transaction."""
    rows: list[dict[str, Any]] = []
    for _ in range(count):
        gid = str(uuid.uuid4())
        digest = hashlib.sha256(gid.encode()).hexdigest()
        rows.append(
            {
                "id": gid,
                "token_id": token,
                "kind": "text",
                "prompt": "bench",
                "options": {},
                "source": "api",
                "status": "succeeded",
                "content_uri": f"http://127.0.0.1:8787/v1/content/{digest}",
                "content_hash": "0x" + digest,
            }
        )
    async with engine.begin() as conn:
        await conn.execute(table_of(Generation).insert(), rows)
        for row in rows:
            await add_mint(conn, row["id"])


async def one_run(url: str, deployment: Deployment, token: int, plan: Plan, tmp: Path) -> Result:
    database = sqlite_url(tmp / f"{plan.chain}-{plan.mode}.db".replace(" ", "_"))
    migrate.upgrade(database)
    engine = create_async(database)
    rpc = ChainRpc([url])
    try:
        await Indexer(rpc, engine, deployment, IndexerConfig()).sync_once()
        await hand_over(engine, token, plan.mints)
        ctx = Context(
            engine=engine,
            chain=MintChain(rpc, deployment, 16),
            account=Account.from_key(MINTER.key),
            settings=relayer_settings(plan.mode),
            chain_id=deployment.chain_id,
            confirmations=0,
        )
        return await drive(Relayer(ctx), plan, rpc)
    finally:
        await rpc.close()
        await engine.dispose()


async def drive(relayer: Relayer, plan: Plan, rpc: ChainRpc) -> Result:
    first_block = await rpc.head_number()
    began = time.perf_counter()
    rounds = 0
    try:
        while await relayer.unsettled():
            await relayer.step()
            rounds += 1
            if rounds > MAX_ROUNDS:
                raise RuntimeError(f"{plan}: not settled after {MAX_ROUNDS} rounds")
        seconds = time.perf_counter() - began
    finally:
        await relayer.close()
    engine = relayer.ctx.engine
    async with engine.connect() as conn:
        confirmed = await conn.scalar(
            select(func.count()).select_from(Mint).where(Mint.status == "confirmed")
        )
        sent = await conn.scalar(select(func.count()).select_from(MintAttempt))
    if confirmed != plan.mints:
        raise RuntimeError(f"{plan}: {confirmed} of {plan.mints} mints confirmed")
    blocks = await rpc.head_number() - first_block
    return Result(plan, seconds, blocks, int(sent or 0), rounds)


async def measure(url: str, runs: list[Plan], tmp: Path) -> list[Result]:
    deployment, token = setup_chain(url)
    results = []
    for plan in runs:
        set_mining(url, plan.chain)
        say(f"{plan.chain}, {plan.mode}: {plan.mints} mints")
        result = await one_run(url, deployment, token, plan, tmp)
        say(f"  {result.seconds:.2f} s, {result.per_second:.1f} mints/s")
        results.append(result)
    set_mining(url, "automine")
    return results


def anvil_version() -> str:
    found = subprocess.run(
        [str(foundry_binary("anvil")), "--version"], capture_output=True, text=True, check=False
    )
    return found.stdout.strip().splitlines()[0] if found.stdout else "anvil"


def render(results: list[Result], argv: Sequence[str]) -> str:
    command = shlex.join([".venv/bin/python", "-m", "bench.mints", *argv])
    lines = [
        "# inftd mint relayer benchmark: pipelined nonces against send-and-wait",
        "",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {platform.processor() or platform.machine()}, Linux {platform.release()}",
        f"- Python {platform.python_version()}, SQLite, {anvil_version()}",
        f"- Command: `{command}`",
        "",
        "| chain | relayer | mints | seconds | mints/s | blocks | transactions | rounds "
        "| ÷ send-and-wait |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    baseline = {r.plan.chain: r.per_second for r in results if r.plan.mode == "send-and-wait"}
    for r in results:
        ratio = r.per_second / baseline[r.plan.chain] if r.plan.chain in baseline else 0.0
        lines.append(
            f"| {r.plan.chain} | {r.plan.mode} | {r.plan.mints:,} | {r.seconds:.2f} | "
            f"{r.per_second:.1f} | {r.blocks:,} | {r.transactions:,} | {r.rounds:,} | "
            f"{ratio:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    options = parse_args(args)
    with tempfile.TemporaryDirectory(prefix="inftd-bench-mints-") as tmp, Anvil() as anvil:
        results = asyncio.run(measure(anvil.url, plans(options.quick), Path(tmp)))
    text = render(results, args)
    print(text)
    options.out.write_text(text)
    say(f"written to {options.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
