"""The hand-over to the mint relayer (issue #7): a ``pending`` mint row per succeeded
generation, written in the transaction that marks it succeeded.

The on-chain ``requestKey`` of a generation is ``keccak256(generation id as UTF-8)``: the
same generation always maps to the same key, and ``GenerationNFT`` mints a key once, so a
retried mint transaction is harmless.
"""

from __future__ import annotations

import functools
from typing import Any

from eth_utils.crypto import keccak
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.store.models import Mint, table_of
from inftd.store.sql import insert_ignore

PENDING = "pending"


def request_key(generation_id: str) -> str:
    """``"0x"`` + keccak256 of the generation id's UTF-8 bytes, in hex."""
    return "0x" + keccak(generation_id.encode()).hex()


async def add_mint(conn: AsyncConnection, generation_id: str) -> bool:
    """A pending mint for the generation, once (the generation id is the key); returns
    whether it was written now."""
    row = {"generation_id": generation_id, "request_key": request_key(generation_id)}
    result = await conn.execute(_insert_returning(conn), {**row, "status": PENDING})
    return result.first() is not None


def _insert_returning(conn: AsyncConnection) -> Any:
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT DO NOTHING.
    return _returning(insert_ignore(conn, table_of(Mint)))


@functools.cache
def _returning(statement: Any) -> Any:
    return statement.returning(table_of(Mint).c.generation_id)


async def mint_of(conn: AsyncConnection, generation_id: str) -> dict[str, Any] | None:
    """The generation's mint as the API shows it, or None if it has none."""
    row = (await conn.execute(select(Mint).where(Mint.generation_id == generation_id))).first()
    return None if row is None else mint_json(row)


def mint_json(row: Any) -> dict[str, Any]:
    return {
        "status": row.status,
        "requestKey": row.request_key,
        "txHash": row.tx_hash,
        "tokenId": row.nft_token_id,
        "blockNumber": row.block_number,
    }
