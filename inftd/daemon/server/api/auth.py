"""Sign-In with Ethereum: ``GET /v1/auth/nonce``, ``POST /v1/auth/login``."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from inftd.daemon.auth.signatures import SignatureUnverifiable
from inftd.daemon.auth.siwe import format_time
from inftd.daemon.auth.tokens import (
    AuthError,
    check_message,
    check_signature,
    checksum_address,
    consume_nonce,
    issue_nonce,
)
from inftd.daemon.server.http import RUNTIME, ApiError, json_response, read_json


def expected_domain(request: web.Request) -> str:
    """The domain sign-in messages must name: ``api.domain``, else the request's Host."""
    return request.app[RUNTIME].settings.api.domain or request.host


async def get_nonce(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        address = checksum_address(request.query.get("address", ""))
    except ValueError as exc:
        raise ApiError(400, "bad_address", str(exc)) from None
    async with runtime.engine.begin() as conn:
        issued = await issue_nonce(
            conn,
            address,
            domain=expected_domain(request),
            uri=f"{request.scheme}://{request.host}",
            chain_id=runtime.deployment.chain_id,
            ttl=runtime.settings.api.nonce_ttl,
            now=datetime.now(UTC),
        )
    return json_response(
        {
            "nonce": issued.nonce,
            "message": issued.message.text(),
            "expiresAt": format_time(issued.expires_at),
        }
    )


def _login_fields(body: object) -> tuple[str, str]:
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "expected a JSON object {message, signature}")
    message, signature = body.get("message"), body.get("signature")
    if not isinstance(message, str) or not isinstance(signature, str):
        raise ApiError(400, "bad_request", "'message' and 'signature' must be strings")
    return message, signature


async def login(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    text, signature = _login_fields(await read_json(request))
    now = datetime.now(UTC)
    try:
        message = check_message(
            text, domain=expected_domain(request), chain_id=runtime.deployment.chain_id, now=now
        )
        await check_signature(runtime.rpc, text, signature, message)
        async with runtime.engine.begin() as conn:
            await consume_nonce(conn, message, now)
    except AuthError as exc:
        raise ApiError(401, exc.code, exc.message) from None
    except SignatureUnverifiable as exc:
        raise ApiError(503, "chain_unavailable", str(exc)) from None
    token = runtime.tokens.issue(message.address, now)
    return json_response(
        {"token": token.token, "address": token.address, "expiresAt": format_time(token.expires_at)}
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/auth/nonce", get_nonce)
    app.router.add_post("/v1/auth/login", login)
