"""One nonce allocator per signing key, kept in the database (``relayer_nonces``).

The counter starts at the chain's *pending* nonce of the key (transactions of an earlier
life of the key already in the pool are not overwritten). Each allocation is one
``UPDATE ... RETURNING`` inside the transaction that also stores the signed transactions:
on PostgreSQL the UPDATE holds the row's FOR UPDATE lock until that transaction commits,
on SQLite the database's write lock, so two relayers never get one nonce; and a crash
before the commit takes the allocation back with the rest, so the same nonces are signed
again.

The counter never falls below the chain's *latest* nonce (``floor``): a transaction some
other holder of the key got mined moves it on. Only the latest nonce can do that safely:
the pending one also counts transactions that may still leave the pool, and skipping
their nonces would leave a gap that nothing fills.
"""

from __future__ import annotations

from sqlalchemy import case, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.store.models import RelayerNonce, table_of, utcnow
from inftd.store.sql import insert_ignore

NONCES = table_of(RelayerNonce)


class NonceAllocator:
    def __init__(self, signer: str) -> None:
        self.signer = signer

    async def started(self, conn: AsyncConnection) -> bool:
        """Whether the key has its counter (else ``start`` needs the chain's pending nonce)."""
        found = await conn.scalar(select(NONCES.c.next_nonce).where(NONCES.c.signer == self.signer))
        return found is not None

    async def start(self, conn: AsyncConnection, pending: int) -> None:
        """The counter at ``pending``, unless the key has one. Being a write, it is also what
        takes SQLite's write lock first in the transaction that allocates."""
        row = {"signer": self.signer, "next_nonce": pending, "updated_at": utcnow()}
        await conn.execute(insert_ignore(conn, NONCES).values(**row))

    async def take(self, conn: AsyncConnection, count: int, floor: int) -> int:
        """The first of ``count`` consecutive nonces, reserved until the transaction ends."""
        current = NONCES.c.next_nonce
        start = case((current < floor, floor), else_=current)
        statement = (
            update(NONCES)
            .where(NONCES.c.signer == self.signer)
            .values(next_nonce=start + count, updated_at=utcnow())
            .returning(NONCES.c.next_nonce)
        )
        following = (await conn.execute(statement)).scalar_one()
        return int(following) - count
