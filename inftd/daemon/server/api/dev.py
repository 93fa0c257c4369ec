"""The dev stack's demo accounts, for the console: ``inftd dev`` only, never ``inftd run``.

    GET  /v1/dev/accounts    the demo accounts (Anvil's public test keys); none outside dev
    POST /v1/dev/sign-in     {"account": "buyer"}: a sign-in token for that account
    POST /v1/dev/buy         {"account", "packageType"}: buy a package as it, on chain
    POST /v1/dev/top-up      {"account", "tokenId", "credits"}: top a package up, on chain

The routes that act as them exist only in an app built with demo accounts, which only
``inftd dev`` does (``serve(..., demo=...)``): a daemon on a real chain lists none and has
no such route, whatever its settings. Purchases and top-ups go to the dev chain from
Anvil's unlocked accounts; the indexer takes them in as it takes any.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from eth_abi.abi import encode
from eth_utils.crypto import keccak

from inftd.daemon.auth.siwe import format_time
from inftd.daemon.server.http import RUNTIME, ApiError, json_response, read_json
from inftd.indexer.rpc import RpcError


class DemoAccount(Protocol):
    """A dev chain's well-known account (``inftd dev`` hands them in: cli/devnet.py)."""

    @property
    def address(self) -> str: ...

    @property
    def key(self) -> str: ...


DEMO = web.AppKey("demo_accounts", dict[str, DemoAccount])
MAX_TOP_UP = 10_000  # credits one demo top-up may buy
PURCHASE = keccak(text="purchasePackage(uint8)")[:4]
TOP_UP = keccak(text="addCredits(uint256)")[:4]


def _account(request: web.Request, body: Any) -> DemoAccount:
    accounts = request.app[DEMO]
    name = body.get("account") if isinstance(body, dict) else None
    if name not in accounts:
        raise ApiError(400, "bad_account", f"account must be one of {', '.join(accounts)}")
    return accounts[name]


def _count(body: dict[str, Any], name: str, least: int, most: int) -> int:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise ApiError(400, "bad_request", f"{name} must be an integer from {least} to {most}")
    return value


async def accounts(request: web.Request) -> web.Response:
    listed = [{"name": n, "address": a.address} for n, a in request.app[DEMO].items()]
    return json_response({"accounts": listed})


async def sign_in(request: web.Request) -> web.Response:
    account = _account(request, await read_json(request))
    token = request.app[RUNTIME].tokens.issue(account.address, datetime.now(UTC))
    return json_response(
        {"token": token.token, "address": token.address, "expiresAt": format_time(token.expires_at)}
    )


async def _send(request: web.Request, account: DemoAccount, data: bytes, value: int) -> str:
    runtime = request.app[RUNTIME]
    tx = {
        "from": account.address,
        "to": runtime.deployment.package_address,
        "data": "0x" + data.hex(),
        "value": hex(value),
    }
    try:
        return str(await runtime.rpc.call("eth_sendTransaction", [tx]))
    except RpcError as exc:
        raise ApiError(409, "chain_refused", f"the dev chain refused it: {exc}") from None


async def buy(request: web.Request) -> web.Response:
    body = await read_json(request)
    account = _account(request, body)
    packages = request.app[RUNTIME].settings.packages
    kind = _count(body, "packageType", 0, len(packages) - 1)
    data = PURCHASE + encode(["uint8"], [kind])
    tx_hash = await _send(request, account, data, packages[kind].price_wei)
    return json_response({"txHash": tx_hash}, 202)


async def top_up(request: web.Request) -> web.Response:
    body = await read_json(request)
    account = _account(request, body)
    token_id = _count(body, "tokenId", 0, 2**63 - 1)
    credits = _count(body, "credits", 1, MAX_TOP_UP)
    price = request.app[RUNTIME].settings.credit_price_wei * credits
    tx_hash = await _send(request, account, TOP_UP + encode(["uint256"], [token_id]), price)
    return json_response({"txHash": tx_hash}, 202)


def add_routes(app: web.Application, demo: Sequence[tuple[str, DemoAccount]]) -> None:
    """The list (empty without demo accounts: the console asks it of any daemon), and the
    routes that act as them only in an app that has them (``inftd dev``)."""
    app[DEMO] = dict(demo)
    app.router.add_get("/v1/dev/accounts", accounts)
    if not demo:
        return
    app.router.add_post("/v1/dev/sign-in", sign_in)
    app.router.add_post("/v1/dev/buy", buy)
    app.router.add_post("/v1/dev/top-up", top_up)
