"""The deployment file: where the contracts live on which chain, written by ``inftd deploy``."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inftd.indexer.errors import DeploymentError
from inftd.store.binding import ChainIdentity


class Deployment(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True)

    chain_id: int = Field(alias="chainId")
    package_address: str = Field(alias="packageAddress")
    generation_address: str = Field(alias="generationAddress")
    deploy_block: int = Field(alias="deployBlock")
    deploy_block_hash: str = Field(alias="deployBlockHash")
    abi_version: str = Field(alias="abiVersion")
    deployer: str
    minter: str
    operator: str

    def identity(self) -> ChainIdentity:
        return ChainIdentity(
            chain_id=self.chain_id,
            deploy_block=self.deploy_block,
            deploy_block_hash=self.deploy_block_hash,
            package_address=self.package_address,
            generation_address=self.generation_address,
        )

    def write(self, path: Path) -> None:
        """Atomically, so a crash never leaves half a file for the daemon to read."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.model_dump_json(by_alias=True, indent=2) + "\n")
        os.replace(tmp, path)

    @classmethod
    def read(cls, path: Path) -> Deployment:
        try:
            return cls.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            raise DeploymentError(
                f"no deployment file at {path}: run `inftd deploy` first"
            ) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise DeploymentError(f"bad deployment file {path}: {where}: {first['msg']}") from None
