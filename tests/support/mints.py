"""Succeeded generations handed to the relayer as the queue's worker does it, and what the
chain and the database say about their mints: for the relayer tests and the process tests."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.daemon.cli.devnet import rpc_call
from inftd.daemon.generation.mints import add_mint, request_key
from inftd.store.models import Generation, Mint, table_of
from tests.support.contracts import Contracts


async def finish_generations(engine: AsyncEngine, token_id: int, count: int) -> list[str]:
    """``count`` succeeded generations of the agent, each handed to the relayer."""
    ids = [str(uuid.uuid4()) for _ in range(count)]
    async with engine.begin() as conn:
        rows = [_generation(gid, token_id) for gid in ids]
        await conn.execute(table_of(Generation).insert(), rows)
        for gid in ids:
            assert await add_mint(conn, gid)
    return ids


def _generation(gid: str, token_id: int) -> dict[str, Any]:
    digest = hashlib.sha256(gid.encode()).hexdigest()
    return {
        "id": gid,
        "token_id": token_id,
        "kind": "text",
        "prompt": f"prompt of {gid}",
        "options": {},
        "source": "api",
        "status": "succeeded",
        "content_uri": f"http://127.0.0.1:8787/v1/content/{digest}",
        "content_hash": "0x" + digest,
    }


async def mints(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        return {row.generation_id: row for row in await conn.execute(select(Mint))}


def minted_logs(contracts: Contracts, gid: str) -> list[dict[str, Any]]:
    """Every GenerationMinted of the generation's requestKey, on the whole chain."""
    event = contracts.generation.events.GenerationMinted()
    topic = "0x" + event.topic.hex() if isinstance(event.topic, bytes) else event.topic
    logs: list[dict[str, Any]] = rpc_call(
        contracts.url,
        "eth_getLogs",
        [
            {
                "fromBlock": "0x0",
                "toBlock": "latest",
                "address": contracts.generation.address,
                "topics": [topic, None, None, request_key(gid)],
            }
        ],
    )
    return logs


def assert_minted_once(contracts: Contracts, engine_rows: dict[str, Any], owner: str) -> None:
    """Each generation has exactly one NFT, owned by ``owner``, and its row agrees."""
    fn = contracts.generation.functions
    for gid, row in engine_rows.items():
        (log,) = minted_logs(contracts, gid)
        token = int(log["topics"][1], 16)
        assert row.status == "confirmed", (gid, row.status, row.error)
        assert (row.nft_token_id, row.tx_hash) == (token, log["transactionHash"])
        assert row.block_number == int(log["blockNumber"], 16)
        assert fn.ownerOf(token).call() == owner
        key = bytes.fromhex(request_key(gid)[2:])
        assert fn.tokenIdOf(key).call() == token
