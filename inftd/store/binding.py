"""The chain binding: a database serves one chain and one deployment, never a mix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.store.errors import ChainMismatchError
from inftd.store.models import ChainBinding


@dataclass(frozen=True)
class ChainIdentity:
    chain_id: int
    deploy_block: int
    deploy_block_hash: str
    package_address: str
    generation_address: str

    def describe(self) -> str:
        return (
            f"chain {self.chain_id} with INFTPackage {self.package_address} "
            f"deployed in block {self.deploy_block} ({self.deploy_block_hash[:10]}…)"
        )


async def bind_chain(engine: AsyncEngine, identity: ChainIdentity) -> None:
    """Record the identity in a new database, or check that it is the recorded one.

    Processes started together on a new database may all find none and insert: the losers'
    inserts fail on the key once the first commits, and they check the winner's instead."""
    try:
        async with engine.begin() as conn:
            stored = await _stored(conn)
            if stored is None:
                await conn.execute(insert(ChainBinding).values(id=1, **asdict(identity)))
                return
    except IntegrityError:
        async with engine.connect() as conn:
            stored = await _stored(conn)
        if stored is None:  # not a race for the binding: nothing to check
            raise
    if stored != identity:
        raise ChainMismatchError(stored.describe(), identity.describe())


async def _stored(conn: AsyncConnection) -> ChainIdentity | None:
    columns = [getattr(ChainBinding, f.name) for f in fields(ChainIdentity)]
    row = (await conn.execute(select(*columns).where(ChainBinding.id == 1))).first()
    return None if row is None else ChainIdentity(**row._asdict())
