"""The chain binding: a database serves one chain and one deployment, never a mix."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
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


def _identity(row: ChainBinding) -> ChainIdentity:
    return ChainIdentity(
        chain_id=row.chain_id,
        deploy_block=row.deploy_block,
        deploy_block_hash=row.deploy_block_hash,
        package_address=row.package_address,
        generation_address=row.generation_address,
    )


async def bind_chain(engine: AsyncEngine, identity: ChainIdentity) -> None:
    """Record the identity in a new database, or check that it is the recorded one."""
    async with engine.begin() as conn:
        row = (await conn.execute(select(ChainBinding).where(ChainBinding.id == 1))).first()
        if row is None:
            await conn.execute(ChainBinding.__table__.insert().values(id=1, **identity.__dict__))
            return
        stored = _identity(row)  # type: ignore[arg-type]
        if stored != identity:
            raise ChainMismatchError(stored.describe(), identity.describe())
