"""The chain binding: a database serves one chain and one deployment, never a mix."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

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
    """Record the identity in a new database, or check that it is the recorded one."""
    columns = [getattr(ChainBinding, f.name) for f in fields(ChainIdentity)]
    async with engine.begin() as conn:
        row = (await conn.execute(select(*columns).where(ChainBinding.id == 1))).first()
        if row is None:
            await conn.execute(insert(ChainBinding).values(id=1, **asdict(identity)))
            return
        stored = ChainIdentity(**row._asdict())
        if stored != identity:
            raise ChainMismatchError(stored.describe(), identity.describe())
