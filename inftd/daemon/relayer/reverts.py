"""Revert data of a mint, decoded with the custom errors of GenerationNFT's ABI, and what
the relayer does about each.

    AlreadyMinted                     the generation has its NFT: confirmed, nothing to send
    AccessControlUnauthorizedAccount  the key lacks MINTER_ROLE: failed until an operator
                                      grants it and asks again (POST .../mint)
    UnknownPackageToken, EmptyUri,    the mint can never succeed as asked: failed
    ZeroAddress
    anything else (no data, a panic,  may pass next time (out of gas, a node hiccup):
    an unknown selector)              retried with backoff up to ``max_attempts``
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any

from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.abi import function_signature_to_4byte_selector

from inftd.indexer.abi import load_artifact

SELECTOR_BYTES = 4
MAX_SHOWN_CHARS = 300  # of a decoded argument, in a recorded error
ERROR_STRING = ("Error", ("string",), ("message",))  # require(..., "text")
PANIC = ("Panic", ("uint256",), ("code",))  # assert, overflow, ...
FATAL = frozenset(
    {"AccessControlUnauthorizedAccount", "UnknownPackageToken", "EmptyUri", "ZeroAddress"}
)


class Verdict(Enum):
    MINTED = "minted"  # the requestKey has its token already
    FATAL = "fatal"  # retrying cannot help
    RETRY = "retry"  # retrying may help


@dataclass(frozen=True)
class Revert:
    """A decoded revert: the error's name and arguments, and what to do about it."""

    name: str
    args: dict[str, Any]
    verdict: Verdict

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={_show(v)}" for k, v in self.args.items())
        return f"{self.name}({shown})"


def _show(value: Any) -> str:
    text = "0x" + value.hex() if isinstance(value, bytes) else str(value)
    return text.replace("\x00", "")[:MAX_SHOWN_CHARS]  # PostgreSQL text holds no NUL


def _signature(entry: dict[str, Any]) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    inputs = entry.get("inputs", [])
    return entry["name"], tuple(i["type"] for i in inputs), tuple(i["name"] for i in inputs)


@cache
def _errors() -> dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """Selector → (name, types, argument names) of every error the contract can raise."""
    known = [_signature(e) for e in load_artifact("GenerationNFT").abi if e["type"] == "error"]
    known += [ERROR_STRING, PANIC]
    return {
        function_signature_to_4byte_selector(f"{name}({','.join(types)})"): (name, types, names)
        for name, types, names in known
    }


def _verdict(name: str) -> Verdict:
    if name == "AlreadyMinted":
        return Verdict.MINTED
    if name in FATAL:
        return Verdict.FATAL
    return Verdict.RETRY


def decode_revert(data: bytes) -> Revert:
    """The error ``data`` encodes; an unknown or malformed one is a retryable ``Reverted``."""
    if len(data) < SELECTOR_BYTES:
        return Revert("Reverted", {"data": data} if data else {}, Verdict.RETRY)
    found = _errors().get(data[:SELECTOR_BYTES])
    if found is None:
        return Revert("Reverted", {"data": data}, Verdict.RETRY)
    name, types, names = found
    try:
        values = decode(list(types), data[SELECTOR_BYTES:])
    except DecodingError:
        return Revert(name, {"data": data}, Verdict.RETRY)
    return Revert(name, dict(zip(names, values, strict=True)), _verdict(name))
