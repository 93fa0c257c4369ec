"""Decoding contract logs (raw ``eth_getLogs`` dicts) into the events the projections apply.

Only the events that change agent state are decoded; every other log of the two contracts
(approvals, role changes, a GenerationNFT transfer...) is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from eth_abi.abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from inftd.indexer.abi import load_artifact
from inftd.indexer.deployment import Deployment
from inftd.indexer.errors import IndexerError

PACKAGE_EVENTS = (
    "PackagePurchased",
    "Transfer",
    "CreditsAdded",
    "GenerationRequested",
    "AgentMetadataUpdated",
)
GENERATION_EVENTS = ("GenerationMinted",)
JS_SAFE_INT = 2**53  # larger integers travel as decimal strings, so JSON clients keep them exact
WORD_TYPES = frozenset({"uint256", "uint8", "address", "bytes32"})  # decoded by slicing
TOKEN_ARG = {"GenerationMinted": "packageTokenId"}  # where each event names its package token


class DecodeError(IndexerError):
    pass


@dataclass(frozen=True, slots=True)
class ChainLog:
    """One decoded log; (block_hash, tx_hash, log_index) identifies it on its chain."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    address: str
    name: str
    args: dict[str, Any]

    @property
    def token_id(self) -> int | None:
        value = self.args.get(TOKEN_ARG.get(self.name, "tokenId"))
        return int(value) if value is not None else None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.block_hash, self.tx_hash, self.log_index)


@dataclass(frozen=True)
class EventSpec:
    name: str
    indexed: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]

    @classmethod
    def from_abi(cls, entry: dict[str, Any]) -> EventSpec:
        inputs = entry["inputs"]
        return cls(
            name=entry["name"],
            indexed=tuple((i["name"], i["type"]) for i in inputs if i["indexed"]),
            data=tuple((i["name"], i["type"]) for i in inputs if not i["indexed"]),
        )


def _specs(contract: str, names: tuple[str, ...]) -> dict[str, EventSpec]:
    specs: dict[str, EventSpec] = {}
    for entry in load_artifact(contract).abi:
        if entry["type"] == "event" and entry["name"] in names:
            spec = EventSpec.from_abi(entry)
            signature = ",".join(i["type"] for i in entry["inputs"])
            topic = "0x" + keccak(text=f"{entry['name']}({signature})").hex()
            specs[topic] = spec
    missing = set(names) - {s.name for s in specs.values()}
    if missing:
        raise DecodeError(f"{contract} ABI lacks events {sorted(missing)}")
    return specs


@lru_cache(maxsize=65_536)
def checksum(address: str | bytes) -> str:
    """EIP-55 form; cached, since one keccak per address was most of the decoding time."""
    return to_checksum_address(address)


def _json_int(value: int) -> int | str:
    return value if value < JS_SAFE_INT else str(value)


def _convert(abi_type: str, value: Any) -> Any:
    if abi_type == "address":
        return checksum(value)
    if abi_type.startswith(("uint", "int")):
        return _json_int(int(value))
    if abi_type.startswith("bytes"):
        return "0x" + bytes(value).hex()
    return value


def _topic_value(abi_type: str, topic: str) -> Any:
    raw = bytes.fromhex(topic[2:])
    if abi_type == "address":
        return checksum(raw[-20:])
    if abi_type.startswith(("uint", "int")):
        return _json_int(int.from_bytes(raw, "big", signed=abi_type.startswith("int")))
    return topic.lower()


class Decoder:
    """Decodes the logs of one deployment; ``addresses`` and ``topics`` make its log filter."""

    def __init__(self, deployment: Deployment) -> None:
        self._by_address = {
            deployment.package_address.lower(): _specs("INFTPackage", PACKAGE_EVENTS),
            deployment.generation_address.lower(): _specs("GenerationNFT", GENERATION_EVENTS),
        }
        self.addresses = [deployment.package_address, deployment.generation_address]
        self.topics = [sorted({t for specs in self._by_address.values() for t in specs})]

    def decode(self, log: dict[str, Any]) -> ChainLog | None:
        """The event, or None for a log this daemon does not index. Raises DecodeError."""
        try:
            specs = self._by_address.get(str(log["address"]).lower())
            topics = log["topics"]
            spec = specs.get(str(topics[0]).lower()) if specs and topics else None
            if spec is None:
                return None
            return ChainLog(
                block_number=int(log["blockNumber"], 16),
                block_hash=str(log["blockHash"]).lower(),
                tx_hash=str(log["transactionHash"]).lower(),
                log_index=int(log["logIndex"], 16),
                address=checksum(str(log["address"]).lower()),
                name=spec.name,
                args=_decode_args(spec, topics, log["data"]),
            )
        except (KeyError, TypeError, ValueError, IndexError, DecodingError) as exc:
            raise DecodeError(f"malformed log: {exc!r}") from exc


def _decode_args(spec: EventSpec, topics: list[str], data: str) -> dict[str, Any]:
    if len(topics) != len(spec.indexed) + 1:
        raise ValueError(f"{spec.name} needs {len(spec.indexed)} indexed topics")
    args = {
        name: _topic_value(t, topic)
        for (name, t), topic in zip(spec.indexed, topics[1:], strict=True)
    }
    raw = bytes.fromhex(data[2:])
    if all(t in WORD_TYPES for _, t in spec.data):  # fixed-size words: slice, no eth_abi
        if len(raw) != 32 * len(spec.data):
            raise ValueError(f"{spec.name} data is {len(raw)} bytes")
        words = [raw[i : i + 32] for i in range(0, len(raw), 32)]
        args.update({name: _word(t, w) for (name, t), w in zip(spec.data, words, strict=True)})
        return args
    values = abi_decode([t for _, t in spec.data], raw)
    args.update({name: _convert(t, v) for (name, t), v in zip(spec.data, values, strict=True)})
    return args


def _word(abi_type: str, word: bytes) -> Any:
    if abi_type == "uint256":
        return _json_int(int.from_bytes(word, "big"))
    if abi_type == "uint8":
        if any(word[:31]):
            raise ValueError("uint8 word out of range")
        return word[31]
    if abi_type == "address":
        if any(word[:12]):
            raise ValueError("address word has dirty high bytes")
        return checksum(word[12:])
    return "0x" + word.hex()  # bytes32
