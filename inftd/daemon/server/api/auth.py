"""Sign-In with Ethereum: ``GET /v1/auth/nonce``, ``POST /v1/auth/login``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from aiohttp import web
from pydantic import AfterValidator, Field, PlainSerializer, WithJsonSchema

from inftd.daemon.auth.signatures import ANY_SIGNATURE
from inftd.daemon.auth.siwe import MAX_MESSAGE_CHARS, format_time
from inftd.daemon.auth.tokens import (
    AuthError,
    check_message,
    check_signature,
    checksum_address,
    consume_nonce,
    issue_nonce,
)
from inftd.daemon.server.contract.routes import Answer, Routes
from inftd.daemon.server.contract.wire import Address, Body, Code, Query, Wire
from inftd.daemon.server.http import RUNTIME, ApiError

ROUTES = Routes("auth", "Sign-In with Ethereum")
# What an AuthError of a sign-in may name (inftd.daemon.auth.tokens and .siwe).
LOGIN_REFUSALS = (
    "malformed_message",
    "wrong_domain",
    "wrong_chain",
    "message_expired",
    "message_not_yet_valid",
    "bad_signature",
    "unknown_nonce",
    "nonce_used",
    "nonce_expired",
)
# RFC 3339 in UTC with milliseconds and Z, as in the signed message (siwe.format_time).
SignInTime = Annotated[
    datetime,
    PlainSerializer(format_time, return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


class NonceQuery(Query):
    error_code = "bad_address"  # of a request with no address
    address: Annotated[Address, AfterValidator(checksum_address), Code("bad_address")] = Field(
        description="The Ethereum address to sign in as (lower case or EIP-55)",
        examples=["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"],
    )


class Nonce(Wire):
    nonce: str
    message: str = Field(description="EIP-4361 text to sign unchanged")
    expires_at: SignInTime


class LoginRequest(Body):
    message: Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)] = Field(
        description="The message, as received"
    )
    signature: Annotated[str, Field(pattern=ANY_SIGNATURE.pattern)] = Field(
        description="65 bytes for a key (personal_sign); a smart wallet's in its own format "
        "(EIP-1271; EIP-6492 for an account not deployed yet), checked on chain"
    )


class Login(Wire):
    token: str
    address: Address
    expires_at: SignInTime


def expected_domain(request: web.Request) -> str:
    """The domain sign-in messages must name: ``api.domain``, else the request's Host."""
    return request.app[RUNTIME].settings.api.domain or request.host


@ROUTES.get(
    "/v1/auth/nonce",
    "getNonce",
    "A single-use nonce and the Sign-In with Ethereum (EIP-4361) message to sign",
    ok=Answer("The nonce and the message", Nonce),
)
async def get_nonce(request: web.Request, query: NonceQuery) -> Nonce:
    runtime = request.app[RUNTIME]
    async with runtime.engine.begin() as conn:
        issued = await issue_nonce(
            conn,
            query.address,
            domain=expected_domain(request),
            uri=f"{request.scheme}://{request.host}",
            chain_id=runtime.deployment.chain_id,
            ttl=runtime.settings.api.nonce_ttl,
            now=datetime.now(UTC),
        )
    return Nonce(nonce=issued.nonce, message=issued.message.text(), expires_at=issued.expires_at)


@ROUTES.post(
    "/v1/auth/login",
    "login",
    "Trade a signed sign-in message for a bearer token",
    ok=Answer("Signed in", Login),
    errors={401: LOGIN_REFUSALS, 503: ("chain_unavailable",)},
)
async def login(request: web.Request, body: LoginRequest) -> Login:
    runtime = request.app[RUNTIME]
    now = datetime.now(UTC)
    try:
        message = check_message(
            body.message,
            domain=expected_domain(request),
            chain_id=runtime.deployment.chain_id,
            now=now,
        )
        await check_signature(runtime.rpc, body.message, body.signature, message)
        async with runtime.engine.begin() as conn:
            await consume_nonce(conn, message, now)
    except AuthError as exc:  # its code says which refusal: not one code for the class
        raise ApiError(401, exc.code, exc.message) from None
    token = runtime.tokens.issue(message.address, now)
    return Login(token=token.token, address=token.address, expires_at=token.expires_at)


add_routes = ROUTES.add_to
