"""Decoding contract logs (raw ``eth_getLogs`` dicts) into the events the projections apply.

Only the events that change agent state are decoded; every other log of the two contracts
(approvals, role changes, a GenerationNFT transfer...) is ignored.

A backfill decodes hundreds of thousands of logs, so each event's layout is turned once into
a list of word decoders working on the hex text itself; data with a dynamic type (a string)
goes through ``eth_abi``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, NamedTuple

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
WORD_HEX = 64  # hex digits in one 32-byte ABI word
TOKEN_ARG = {"GenerationMinted": "packageTokenId"}  # where each event names its package token

WordDecoder = Callable[[str], Any]  # 64 hex digits → the JSON-ready value


class DecodeError(IndexerError):
    pass


class ChainLog(NamedTuple):
    """One decoded log; (block_hash, tx_hash, log_index) identifies it on its chain.

    A named tuple: a backfill makes one per log, and a tuple is the cheapest to make."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    address: str
    name: str
    args: dict[str, Any]
    token_id: int | None  # the package token it concerns

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.block_hash, self.tx_hash, self.log_index)


@lru_cache(maxsize=65_536)
def checksum(address: str) -> str:
    """EIP-55 form of a 0x-prefixed address; cached, a keccak per address is slow."""
    return to_checksum_address(address)


def _json_int(value: int) -> int | str:
    return value if value < JS_SAFE_INT else str(value)


def _uint(word: str) -> int | str:
    value = int(word, 16)  # int() takes the "0x" of a whole topic too
    return value if value < JS_SAFE_INT else str(value)  # _json_int, inlined: the hot path


def _int(word: str) -> int | str:
    value = int(word, 16)
    return _json_int(value - (1 << 256) if value >> 255 else value)


def _uint8(word: str) -> int:
    value = int(word, 16)
    if value > 0xFF:
        raise ValueError("uint8 word out of range")
    return value


def _address_topic(topic: str) -> str:
    # the last 20 bytes; checksum() refuses what is not hex
    return checksum("0x" + topic[-40:].lower())


def _address_word(word: str) -> str:
    if int(word[:24], 16):
        raise ValueError("address word has dirty high bytes")
    return checksum("0x" + word[24:].lower())


def _bytes32(word: str) -> str:
    return "0x" + bytes.fromhex(word).hex()


def _hash_topic(topic: str) -> str:
    return topic.lower()


def _topic_decoder(abi_type: str) -> WordDecoder:
    """An indexed argument (a whole "0x" topic): dynamic types are only their hash."""
    if abi_type == "address":
        return _address_topic
    if abi_type.startswith("uint") and abi_type[4:].isdigit():
        return _uint
    if abi_type.startswith("int") and abi_type[3:].isdigit():
        return _int
    return _hash_topic


WORD_DECODERS: dict[str, WordDecoder] = {
    "uint256": _uint,
    "uint8": _uint8,
    "address": _address_word,
    "bytes32": _bytes32,
}  # data types decoded by slicing the hex text; any other type goes through eth_abi


class EventSpec:
    """How to decode one event: a decoder per indexed topic and, if it can, per data word."""

    def __init__(self, entry: dict[str, Any]) -> None:
        inputs = entry["inputs"]
        self.name: str = entry["name"]
        self.token_arg = TOKEN_ARG.get(self.name, "tokenId")
        indexed = [i for i in inputs if i["indexed"]]
        # (name, decoder, position in topics) and (name, decoder, slice of the data text)
        self.topics = [(i["name"], _topic_decoder(i["type"]), n + 1) for n, i in enumerate(indexed)]
        self.data = [(i["name"], i["type"]) for i in inputs if not i["indexed"]]
        self.words = [
            (name, WORD_DECODERS[t], 2 + WORD_HEX * n, 2 + WORD_HEX * (n + 1))
            for n, (name, t) in enumerate(self.data)
            if t in WORD_DECODERS
        ]
        self.sliced = len(self.words) == len(self.data)  # every data word decodes by slicing
        self.data_hex = 2 + WORD_HEX * len(self.data)  # "0x" and the words, when sliced
        self.token_topic = next(  # where the package token is among the topics, if indexed
            (position for name, _, position in self.topics if name == self.token_arg), None
        )

    def args(self, topics: list[str], data: str) -> dict[str, Any]:
        if len(topics) != len(self.topics) + 1:
            raise ValueError(f"{self.name} needs {len(self.topics)} indexed topics")
        args = {}
        for name, decode, position in self.topics:  # plain loops: faster than comprehensions
            args[name] = decode(topics[position])
        if not self.sliced:
            values = abi_decode([t for _, t in self.data], bytes.fromhex(data[2:]))
            for (name, t), value in zip(self.data, values, strict=True):
                args[name] = _convert(t, value)
            return args
        if len(data) != self.data_hex or data[:2] not in ("0x", "0X"):
            raise ValueError(f"{self.name} data is {len(data)} hex characters")
        for name, decode, start, end in self.words:
            args[name] = decode(data[start:end])
        return args

    def token_id(self, args: dict[str, Any]) -> int | None:
        value = args.get(self.token_arg)
        return value if type(value) is int else int(value) if value is not None else None


def _convert(abi_type: str, value: Any) -> Any:
    """A value as eth_abi decoded it, JSON-ready like the word decoders' values."""
    if abi_type == "address":
        return checksum(value.lower())
    if abi_type.startswith(("uint", "int")):
        return _json_int(int(value))
    if abi_type.startswith("bytes"):
        return "0x" + bytes(value).hex()
    return value


def _specs(contract: str, names: tuple[str, ...]) -> dict[str, EventSpec]:
    specs: dict[str, EventSpec] = {}
    for entry in load_artifact(contract).abi:
        if entry["type"] == "event" and entry["name"] in names:
            signature = ",".join(i["type"] for i in entry["inputs"])
            topic = "0x" + keccak(text=f"{entry['name']}({signature})").hex()
            specs[topic] = EventSpec(entry)
    missing = set(names) - {s.name for s in specs.values()}
    if missing:
        raise DecodeError(f"{contract} ABI lacks events {sorted(missing)}")
    return specs


class Decoder:
    """Decodes the logs of one deployment; ``addresses`` and ``topics`` make its log filter."""

    def __init__(self, deployment: Deployment) -> None:
        self._by_address = {
            deployment.package_address.lower(): _specs("INFTPackage", PACKAGE_EVENTS),
            deployment.generation_address.lower(): _specs("GenerationNFT", GENERATION_EVENTS),
        }
        self._checksummed = {a: checksum(a) for a in self._by_address}
        self.addresses = [deployment.package_address, deployment.generation_address]
        self.topics = [sorted({t for specs in self._by_address.values() for t in specs})]

    def token_id(self, log: dict[str, Any]) -> int | None:
        """The package token a log names, without decoding the rest when it is indexed."""
        specs = self._by_address.get(str(log.get("address", "")).lower())
        topics = log.get("topics") or []
        spec = specs.get(str(topics[0]).lower()) if specs and topics else None
        if spec is not None and spec.token_topic is not None and len(topics) > spec.token_topic:
            try:
                return int(topics[spec.token_topic], 16)
            except (TypeError, ValueError):
                pass  # decode() says what is wrong
        event = self.decode(log)
        return event.token_id if event else None

    def decode(self, log: dict[str, Any]) -> ChainLog | None:
        """The event, or None for a log this daemon does not index. Raises DecodeError."""
        try:
            address = log["address"].lower()
            specs = self._by_address.get(address)
            topics = log["topics"]
            spec = specs.get(topics[0].lower()) if specs and topics else None
            if spec is None:
                return None
            args = spec.args(topics, log["data"])
            return ChainLog(
                int(log["blockNumber"], 16),
                log["blockHash"].lower(),
                log["transactionHash"].lower(),
                int(log["logIndex"], 16),
                self._checksummed[address],
                spec.name,
                args,
                spec.token_id(args),
            )
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, DecodingError) as exc:
            raise DecodeError(f"malformed log: {exc!r}") from exc
