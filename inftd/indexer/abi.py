"""The committed contract artifacts (``contracts/abi/*.json``): the only thing Python reads
of the contracts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from inftd.indexer.errors import ArtifactError

CONTRACT_NAMES = ("INFTPackage", "GenerationNFT")
_SOURCE_TREE_ABI = Path(__file__).resolve().parents[2] / "contracts" / "abi"


@dataclass(frozen=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def _abi_dir() -> Path:
    if _SOURCE_TREE_ABI.is_dir():
        return _SOURCE_TREE_ABI
    return Path(str(resources.files("inftd") / "_abi"))  # installed from a wheel


@cache
def load_artifact(name: str) -> Artifact:
    path = _abi_dir() / f"{name}.json"
    try:
        data = orjson.loads(path.read_bytes())
        return Artifact(name=name, abi=data["abi"], bytecode=data["bytecode"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtifactError(f"cannot read contract artifact {path}: {exc}") from exc


@cache
def abi_version() -> str:
    """A short digest of every contract ABI: changes exactly when an interface changes."""
    digest = hashlib.sha256()
    for name in CONTRACT_NAMES:
        digest.update(orjson.dumps(load_artifact(name).abi, option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()[:16]
