"""Decoding logs: the fast word-slicing path agrees with eth_abi, and bad logs are refused."""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi.abi import encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given
from hypothesis import strategies as st

from inftd.indexer.decode import DecodeError, Decoder
from inftd.indexer.deployment import Deployment

PACKAGE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
DEPLOYMENT = Deployment(
    chain_id=31337,
    package_address=PACKAGE,
    generation_address="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    deploy_block=1,
    deploy_block_hash="0x" + "00" * 32,
    abi_version="x",
    deployer=PACKAGE,
    minter=PACKAGE,
    operator=PACKAGE,
)
DECODER = Decoder(DEPLOYMENT)
PURCHASED = "0x" + keccak(text="PackagePurchased(uint256,address,uint8,uint256,uint256)").hex()
REQUESTED = "0x" + keccak(text="GenerationRequested(uint256,uint256,address,uint8,string)").hex()

uint256 = st.integers(min_value=0, max_value=2**256 - 1)
addresses = st.binary(min_size=20, max_size=20)


def topic(value: int | bytes) -> str:
    raw = value.rjust(32, b"\0") if isinstance(value, bytes) else value.to_bytes(32, "big")
    return "0x" + raw.hex()


def log(topics: list[str], data: bytes) -> dict[str, Any]:
    return {
        "address": PACKAGE.lower(),
        "topics": topics,
        "data": "0x" + data.hex(),
        "blockNumber": "0x5",
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "cd" * 32,
        "logIndex": "0x1",
    }


def as_json(value: int) -> int | str:
    return value if value < 2**53 else str(value)


@given(token=uint256, buyer=addresses, kind=st.integers(0, 255), credits=uint256, price=uint256)
def test_purchases_decode_exactly(
    token: int, buyer: bytes, kind: int, credits: int, price: int
) -> None:
    entry = log(
        [PURCHASED, topic(token), topic(buyer), topic(kind)],
        encode(["uint256", "uint256"], [credits, price]),
    )
    event = DECODER.decode(entry)
    assert event is not None
    assert event.args == {
        "tokenId": as_json(token),
        "buyer": to_checksum_address(buyer),
        "packageType": kind,
        "credits": as_json(credits),
        "price": as_json(price),
    }


@given(prompt=st.text(max_size=300), kind=st.integers(0, 255))
def test_strings_go_through_eth_abi(prompt: str, kind: int) -> None:
    entry = log(
        [REQUESTED, topic(1), topic(2), topic(b"\x11" * 20)],
        encode(["uint8", "string"], [kind, prompt]),
    )
    event = DECODER.decode(entry)
    assert event is not None
    assert (event.args["kind"], event.args["prompt"]) == (kind, prompt)


@pytest.mark.parametrize(
    "data",
    [
        b"\0" * 63,  # one byte short
        b"\0" * 96,  # one word too many
        b"",
    ],
)
def test_malformed_data_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        DECODER.decode(log([PURCHASED, topic(1), topic(b"\1" * 20), topic(0)], data))


def test_an_out_of_range_word_is_a_decode_error() -> None:
    good = log([PURCHASED, topic(1), topic(b"\1" * 20), topic(0)], encode(["uint256"] * 2, [1, 2]))
    assert DECODER.decode(good) is not None
    with pytest.raises(DecodeError):
        DECODER.decode(log([REQUESTED, topic(1), topic(2), topic(b"\1" * 20)], b"\xff" * 64))


@given(token=uint256, buyer=addresses)
def test_the_package_token_is_read_without_decoding(token: int, buyer: bytes) -> None:
    entry = log([PURCHASED, topic(token), topic(buyer), topic(0)], encode(["uint256"] * 2, [1, 2]))
    event = DECODER.decode(entry)
    assert event is not None
    assert DECODER.token_id(entry) == event.token_id == token


def test_the_package_token_of_a_log_not_indexed_is_none() -> None:
    other = log([PURCHASED, topic(1), topic(b"\1" * 20), topic(0)], b"\0" * 64)
    other["address"] = "0x" + "77" * 20
    assert DECODER.token_id(other) is None
    with pytest.raises(DecodeError):
        DECODER.token_id(log([PURCHASED, "0xnothex", topic(b"\1" * 20), topic(0)], b"\0" * 64))
