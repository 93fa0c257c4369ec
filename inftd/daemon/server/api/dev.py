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
from typing import Annotated, Protocol

from aiohttp import web
from eth_abi.abi import encode
from eth_utils.crypto import keccak
from pydantic import Field

from inftd.daemon.server.contract.routes import Answer, Routes
from inftd.daemon.server.contract.wire import MAX_BIGINT, Address, Body, Code, Time, Wire
from inftd.daemon.server.http import RUNTIME, ApiError
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
ROUTES = Routes("meta", "Health, status, metrics and this document")
DEMO_ROUTES = Routes("dev", "inftd dev only: act as its demo accounts on the dev chain")
AccountName = Annotated[str, Field(description="A demo account's name"), Code("bad_account")]


class DevAccount(Wire):
    name: str
    address: Address


class DevAccounts(Wire):
    accounts: list[DevAccount]


class DevSignIn(Body):
    error_code = "bad_account"
    account: AccountName


class DevBuy(Body):
    account: AccountName
    package_type: Annotated[int, Field(ge=0, le=255)]


class DevTopUp(Body):
    account: AccountName
    token_id: Annotated[int, Field(ge=0, le=MAX_BIGINT)]
    credits: Annotated[int, Field(ge=1, le=MAX_TOP_UP)]


class DevLogin(Wire):
    token: str
    address: Address
    expires_at: Time


class DevSent(Wire):
    tx_hash: str = Field(description="The transaction, sent to the dev chain")


def _account(request: web.Request, name: str) -> DemoAccount:
    accounts = request.app[DEMO]
    if name not in accounts:
        raise ApiError(400, "bad_account", f"account must be one of {', '.join(accounts)}")
    return accounts[name]


@ROUTES.get(
    "/v1/dev/accounts",
    "devAccounts",
    "The demo accounts of inftd dev's chain (Anvil's public test keys), which the console "
    "signs in as; empty on any other daemon, which has no route acting as them",
    ok=Answer("The demo accounts", DevAccounts),
)
async def accounts(request: web.Request) -> DevAccounts:
    listed = [DevAccount(name=n, address=a.address) for n, a in request.app[DEMO].items()]
    return DevAccounts(accounts=listed)


@DEMO_ROUTES.post(
    "/v1/dev/sign-in",
    "devSignIn",
    "A sign-in token for a demo account",
    ok=Answer("Signed in", DevLogin),
)
async def sign_in(request: web.Request, body: DevSignIn) -> DevLogin:
    account = _account(request, body.account)
    token = request.app[RUNTIME].tokens.issue(account.address, datetime.now(UTC))
    return DevLogin(token=token.token, address=token.address, expires_at=token.expires_at)


async def _send(request: web.Request, account: DemoAccount, data: bytes, value: int) -> DevSent:
    runtime = request.app[RUNTIME]
    tx = {
        "from": account.address,
        "to": runtime.deployment.package_address,
        "data": "0x" + data.hex(),
        "value": hex(value),
    }
    try:
        return DevSent(tx_hash=str(await runtime.rpc.call("eth_sendTransaction", [tx])))
    except RpcError as exc:
        raise ApiError(409, "chain_refused", f"the dev chain refused it: {exc}") from None


SENT = Answer("Sent to the dev chain; the indexer takes it in", DevSent, status=202)


@DEMO_ROUTES.post(
    "/v1/dev/buy",
    "devBuy",
    "Buy a package as a demo account",
    ok=SENT,
    errors={409: ("chain_refused",)},
)
async def buy(request: web.Request, body: DevBuy) -> DevSent:
    account = _account(request, body.account)
    packages = request.app[RUNTIME].settings.packages
    if body.package_type >= len(packages):
        raise ApiError(400, "bad_request", f"packageType must be 0 to {len(packages) - 1}")
    data = PURCHASE + encode(["uint8"], [body.package_type])
    return await _send(request, account, data, packages[body.package_type].price_wei)


@DEMO_ROUTES.post(
    "/v1/dev/top-up",
    "devTopUp",
    "Top a package up as a demo account",
    ok=SENT,
    errors={409: ("chain_refused",)},
)
async def top_up(request: web.Request, body: DevTopUp) -> DevSent:
    account = _account(request, body.account)
    price = request.app[RUNTIME].settings.credit_price_wei * body.credits
    data = TOP_UP + encode(["uint256"], [body.token_id])
    return await _send(request, account, data, price)


def add_routes(app: web.Application, demo: Sequence[tuple[str, DemoAccount]]) -> None:
    """The list (empty without demo accounts: the console asks it of any daemon), and the
    routes that act as them only in an app that has them (``inftd dev``)."""
    app[DEMO] = dict(demo)
    ROUTES.add_to(app)
    if demo:
        DEMO_ROUTES.add_to(app)
