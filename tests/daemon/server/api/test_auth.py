"""GET /v1/auth/nonce and POST /v1/auth/login against a real chain, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from eth_abi.abi import encode
from sqlalchemy import select, update
from web3 import Web3

from inftd.daemon.auth.siwe import format_time, parse_message
from inftd.daemon.auth.tokens import STATEMENT
from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.daemon.config import Settings
from inftd.indexer.abi import load_artifact
from inftd.indexer.deployment import Deployment
from inftd.store.models import AuthNonce
from tests.support.api import OpenApi, api_client, nonce_for, runtime_of, sign


def _settings(chain: Anvil, tmp_path: Path, database_url: str, **api: Any) -> Settings:
    return Settings.load(
        data_dir=tmp_path, database_url=database_url, chain={"rpc_urls": [chain.url]}, api=api
    )


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[TestClient]:
    async with open_api() as client:
        yield client


async def login(client: TestClient, message: str, signature: str) -> tuple[int, dict[str, Any]]:
    response = await client.post(
        "/v1/auth/login", json={"message": message, "signature": signature}
    )
    return response.status, await response.json()


def host_of(client: TestClient) -> str:
    return f"{client.server.host}:{client.server.port}"


async def test_sign_in(client: TestClient) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    issued = await nonce_for(client, BUYER.address.lower())  # any spelling of the address
    message = parse_message(issued["message"])
    assert message.domain == host_of(client)
    assert message.uri == f"http://{host_of(client)}"
    assert message.address == BUYER.address
    assert (message.chain_id, message.nonce, message.statement) == (
        31337,
        issued["nonce"],
        STATEMENT,
    )
    assert message.expiration_time is not None
    assert issued["expiresAt"] == format_time(message.expiration_time)
    assert message.expiration_time - message.issued_at == timedelta(seconds=300)
    assert message.issued_at >= before

    status, body = await login(client, issued["message"], sign(issued["message"], BUYER.key))
    assert status == 200, body
    assert body["address"] == BUYER.address
    expires = datetime.fromisoformat(body["expiresAt"])
    assert timedelta(seconds=3598) <= expires - datetime.now(UTC) <= timedelta(seconds=3600)
    assert runtime_of(client).tokens.verify(body["token"], datetime.now(UTC)) == BUYER.address


@pytest.mark.parametrize(
    "address",
    [None, "", "0x1234", "0x70997970c51812dc3a010c7d01b50e0d17dc79c", BUYER.address.upper()[2:]],
)
async def test_a_bad_address_gets_no_nonce(client: TestClient, address: str | None) -> None:
    params = {} if address is None else {"address": address}
    response = await client.get("/v1/auth/nonce", params=params)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "bad_address"


async def test_a_wrongly_checksummed_address_gets_no_nonce(client: TestClient) -> None:
    wrong = BUYER.address.replace("C5", "c5")  # one letter in the wrong case
    response = await client.get("/v1/auth/nonce", params={"address": wrong})
    assert response.status == 400


async def test_a_nonce_signs_in_once(client: TestClient) -> None:
    message = (await nonce_for(client, BUYER.address))["message"]
    signature = sign(message, BUYER.key)
    assert (await login(client, message, signature))[0] == 200
    status, body = await login(client, message, signature)
    assert status == 401
    assert body["error"]["code"] == "nonce_used"


def _edit(message: str, old: str, new: str) -> str:
    assert old in message
    return message.replace(old, new)


async def test_refused_logins_change_nothing(client: TestClient) -> None:
    issued = await nonce_for(client, BUYER.address)
    good = issued["message"]
    past = format_time(datetime.now(UTC) - timedelta(seconds=5))
    expiry = f"Expiration Time: {issued['expiresAt']}"
    cases = [
        (_edit(good, host_of(client), "evil.example"), BUYER.key, "wrong_domain"),
        (_edit(good, "Chain ID: 31337", "Chain ID: 1"), BUYER.key, "wrong_chain"),
        (_edit(good, expiry, f"Expiration Time: {past}"), BUYER.key, "message_expired"),
        (good, FRIEND.key, "bad_signature"),
        (_edit(good, BUYER.address, FRIEND.address), FRIEND.key, "unknown_nonce"),
        (_edit(good, issued["nonce"], "f" * 32), BUYER.key, "unknown_nonce"),
        ("hello", BUYER.key, "malformed_message"),
        (good + "\n", BUYER.key, "malformed_message"),
    ]
    for message, key, code in cases:
        status, body = await login(client, message, sign(message, key))
        assert (status, body["error"]["code"]) == (401, code), message
        assert body["error"]["message"]
    status, body = await login(client, good, "0x" + "00" * 65)
    assert (status, body["error"]["code"]) == (401, "bad_signature")
    async with runtime_of(client).engine.connect() as conn:
        used = await conn.scalar(
            select(AuthNonce.used_at).where(AuthNonce.nonce == issued["nonce"])
        )
    assert used is None
    assert (await login(client, good, sign(good, BUYER.key)))[0] == 200


async def test_an_expired_nonce_is_refused(client: TestClient) -> None:
    issued = await nonce_for(client, BUYER.address)
    async with runtime_of(client).engine.begin() as conn:
        await conn.execute(
            update(AuthNonce)
            .where(AuthNonce.nonce == issued["nonce"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    status, body = await login(client, issued["message"], sign(issued["message"], BUYER.key))
    assert (status, body["error"]["code"]) == (401, "nonce_expired")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "malformed_json"),
        (b"[]", "bad_request"),
        (b'{"message": "x"}', "bad_request"),
        (b'{"message": 1, "signature": "0x"}', "bad_request"),
        # The document's bounds, refused before the message is read (were 401s, or ignored)
        (b'{"message": "x", "signature": "0xzz"}', "bad_request"),
        (b'{"message": "x", "signature": "0x' + b"ab" * 8193 + b'"}', "bad_request"),
        (b'{"message": "' + b"x" * 8193 + b'", "signature": "0x00"}', "bad_request"),
        (b'{"message": "x", "signature": "0x00", "more": 1}', "bad_request"),
    ],
)
async def test_a_malformed_login_body_is_a_400(client: TestClient, body: bytes, code: str) -> None:
    response = await client.post("/v1/auth/login", data=body)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == code


async def test_the_configured_domain_is_the_one_to_sign(
    chain: Anvil, deployment: Deployment, tmp_path: Path, database_url: str
) -> None:
    settings = _settings(chain, tmp_path, database_url, domain="app.inftd.example")
    async with api_client(settings, deployment) as client:
        message = (await nonce_for(client, BUYER.address))["message"]
        assert message.startswith("app.inftd.example wants you to sign in")
        assert (await login(client, message, sign(message, BUYER.key)))[0] == 200
        own_host = _edit(
            (await nonce_for(client, BUYER.address))["message"],
            "app.inftd.example",
            host_of(client),
        )
        status, body = await login(client, own_host, sign(own_host, BUYER.key))
        assert (status, body["error"]["code"]) == (401, "wrong_domain")


# -- smart wallets -------------------------------------------------------------------------

WRAPPED = bytes.fromhex("64926492" * 8)  # EIP-6492's suffix


class Accounts:
    """DevSmartAccountFactory on the test chain, and accounts of FRIEND's key from it."""

    def __init__(self, url: str) -> None:
        self.w3 = Web3(Web3.HTTPProvider(url))
        artifact = load_artifact("DevSmartAccountFactory")
        built = self.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        receipt = self._send(built.constructor())
        self.factory = self.w3.eth.contract(receipt["contractAddress"], abi=artifact.abi)

    def _send(self, call: Any) -> Any:
        tx = call.transact({"from": FRIEND.address})
        return self.w3.eth.wait_for_transaction_receipt(tx)

    def address(self, salt: int) -> str:
        return str(self.factory.functions.addressOf(FRIEND.address, salt.to_bytes(32)).call())

    def deploy(self, salt: int) -> str:
        self._send(self.factory.functions.deploy(FRIEND.address, salt.to_bytes(32)))
        return self.address(salt)

    def wrapped(self, salt: int, signature: str) -> str:
        """``signature`` wrapped for an account not deployed yet: its factory call first."""
        call = self.factory.encode_abi("deploy", [FRIEND.address, salt.to_bytes(32)])
        inner = encode(
            ["address", "bytes", "bytes"],
            [self.factory.address, bytes.fromhex(call[2:]), bytes.fromhex(signature[2:])],
        )
        return "0x" + (inner + WRAPPED).hex()

    def code(self, address: str) -> bytes:
        return bytes(self.w3.eth.get_code(address))


@pytest.fixture
def accounts(chain: Anvil) -> Accounts:
    return Accounts(chain.url)


async def test_a_smart_wallet_signs_in_deployed_or_not_yet(
    client: TestClient, accounts: Accounts
) -> None:
    deployed = accounts.deploy(1)
    message = (await nonce_for(client, deployed))["message"]
    status, body = await login(client, message, sign(message, FRIEND.key))  # EIP-1271
    assert (status, body["address"]) == (200, deployed)

    later = accounts.address(2)
    assert accounts.code(later) == b""
    message = (await nonce_for(client, later))["message"]
    status, body = await login(client, message, accounts.wrapped(2, sign(message, FRIEND.key)))
    assert (status, body["address"]) == (200, later)  # EIP-6492
    assert accounts.code(later) == b""  # checked in a call: nothing was deployed

    message = (await nonce_for(client, deployed))["message"]
    status, body = await login(client, message, sign(message, BUYER.key))  # not its owner
    assert (status, body["error"]["code"]) == (401, "bad_signature")
    message = (await nonce_for(client, accounts.address(3)))["message"]
    status, body = await login(client, message, sign(message, FRIEND.key))  # no code, no wrap
    assert (status, body["error"]["code"]) == (401, "bad_signature")
