"""Generations: ask an agent for one, follow it, cancel it, fetch its content.

    POST /v1/agents/{tokenId}/generations     owner: queue one (Idempotency-Key honoured) → 202
    GET  /v1/agents/{tokenId}/generations     owner: a page of them, newest first
    GET  /v1/generations/{generationId}       owner: one, with its mint
    POST /v1/generations/{generationId}/cancel  owner: a queued one ends at once; a running
                                              one is stopped by its worker
    POST /api/generate                        the seed's route: the same, the token in the body
    GET  /v1/content/{sha256}                 public: content of a succeeded generation

and the WebSocket command ``generate`` (``socket_generate``).

Who sees what. A generation's record (its prompt, options, errors, the prompt builder's
additions from the agent's private memories, its rounds) is the owner's and the operator's:
the prompt is the owner's until the content comes out. The content of a succeeded
generation is public (it is minted as a public NFT, its URI on chain), and so are the
lifecycle events on the agent's channel, which name no prompt; the streamed progress is
private.

The same Idempotency-Key (1 to 128 printable ASCII characters) with the same request returns
the first generation (202, ``Idempotent-Replayed: true``), with another request 409
``idempotency_conflict``; without a key every request is a new generation. Refusals name
the limit or field: 400 ``bad_request`` / ``limit_exceeded`` (prompt length) /
``unpriced_generation``, 429 ``limit_exceeded`` (concurrent jobs, daily credits), 409
``insufficient_credits``, 403 ``no_collaboration``; nothing is reserved then.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from aiohttp import web

from inftd.agents.errors import (
    AgentError,
    InsufficientCredits,
    LimitExceeded,
    UnknownAgent,
    UnknownGeneration,
    UnpricedGeneration,
)
from inftd.agents.live import content_etag
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.daemon.auth.tokens import Principal
from inftd.daemon.generation.content import SHA256, ContentStore, content_type_of
from inftd.daemon.generation.errors import (
    BadGenerationRequest,
    IdempotencyConflict,
    NoCollaboration,
    NotCancellable,
)
from inftd.daemon.generation.queue import (
    Created,
    cancel,
    create,
    generation_unminted,
    list_generations,
    with_mint,
)
from inftd.daemon.generation.requests import parse_request
from inftd.daemon.runtime import Runtime
from inftd.daemon.server.access import owner_or_operator, require_owner, require_signed_in
from inftd.daemon.server.api.agents import token_id_of
from inftd.daemon.server.api.credits import api_error
from inftd.daemon.server.http import (
    RUNTIME,
    ApiError,
    json_response,
    not_modified,
    reach_min_seq,
    read_json,
    versioned_response,
)

PAGE = 20  # generations per page unless ?limit= says otherwise
MAX_PAGE = 100
MAX_KEY_CHARS = 128  # an Idempotency-Key
KEY_HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
LEGACY_PATH = "/api/generate"
CONTENT_PATH = "/v1/content/{sha256}"
CACHE_CONTROL = "public, max-age=31536000, immutable"  # a year: the hash names the bytes
LEGACY_TOKEN_FIELDS = ("packageTokenId", "tokenId")


def _key_of(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not 0 < len(raw) <= MAX_KEY_CHARS or not (raw.isascii() and raw.isprintable()):
        raise ApiError(
            400,
            "bad_idempotency_key",
            f"{KEY_HEADER} must be 1 to {MAX_KEY_CHARS} printable ASCII characters",
        )
    return raw


def _refusal(exc: Exception) -> ApiError:
    """The answer to a refused create; its message names the field, limit or key."""
    if isinstance(exc, BadGenerationRequest):
        return ApiError(400, "bad_request", str(exc))
    if isinstance(exc, IdempotencyConflict):
        return ApiError(409, "idempotency_conflict", str(exc))
    if isinstance(exc, NoCollaboration):
        return ApiError(403, "no_collaboration", str(exc))
    if isinstance(exc, AgentError):
        return api_error(exc)
    raise exc


async def queue_generation(runtime: Runtime, token_id: int, body: Any, key: str | None) -> Created:
    """Check and queue a generation for an agent whose owner is asking (checked already)."""
    try:
        request = parse_request(body)
        if token_id > MAX_STORED_TOKEN_ID:
            raise UnknownAgent(token_id)
        created = await create(runtime.writer, runtime.settings, token_id, request, key)
    except (
        BadGenerationRequest,
        IdempotencyConflict,
        NoCollaboration,
        UnknownAgent,
        LimitExceeded,
        UnpricedGeneration,
        InsufficientCredits,
    ) as exc:
        raise _refusal(exc) from None
    runtime.hub.poke()  # generation.queued: subscribers, and the workers of every process
    return created


def _accepted(created: Created) -> web.Response:
    response = json_response(created.generation, 202)
    if created.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


async def post_generation(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    if token_id > MAX_STORED_TOKEN_ID:
        raise ApiError(404, "unknown_agent", str(UnknownAgent(token_id)))
    await require_owner(request, token_id)
    key = _key_of(request.headers.get(KEY_HEADER))
    body = await read_json(request)
    return _accepted(await queue_generation(request.app[RUNTIME], token_id, body, key))


def _legacy_token(body: Any) -> int:
    found = [body.pop(f) for f in LEGACY_TOKEN_FIELDS if isinstance(body, dict) and f in body]
    if len(found) != 1:
        raise ApiError(400, "bad_token_id", "give the package token as packageTokenId")
    token = found[0]
    if isinstance(token, bool) or not isinstance(token, int) or token < 0:
        raise ApiError(400, "bad_token_id", "packageTokenId must be a non-negative integer")
    return token


async def legacy_generate(request: web.Request) -> web.Response:
    """The seed's ``/api/generate``: the body of the v1 route with ``packageTokenId`` (or
    ``tokenId``) in it, and ``type`` for ``kind``; the same checks and answer."""
    require_signed_in(request)
    body = await read_json(request)
    token_id = _legacy_token(body)
    if "type" in body and "kind" not in body:
        body["kind"] = body.pop("type")
    if token_id > MAX_STORED_TOKEN_ID:
        raise ApiError(404, "unknown_agent", str(UnknownAgent(token_id)))
    await require_owner(request, token_id)
    key = _key_of(request.headers.get(KEY_HEADER))
    return _accepted(await queue_generation(request.app[RUNTIME], token_id, body, key))


async def _owned_generation(request: web.Request) -> tuple[str, int]:
    """The generation of the route and its agent, if the caller owns it (or operates)."""
    generation_id = request.match_info["generation_id"]
    require_signed_in(request)  # who asks comes before whether the generation exists
    try:
        token_id = await request.app[RUNTIME].live.generation_token(generation_id)
    except UnknownGeneration as exc:
        raise ApiError(404, "unknown_generation", str(exc)) from None
    await require_owner(request, token_id)
    return generation_id, token_id


async def get_generation(request: web.Request) -> web.Response:
    """The generation from its agent's live copy (its mint read fresh); a content ETag."""
    generation_id, token_id = await _owned_generation(request)
    await reach_min_seq(request)
    runtime = request.app[RUNTIME]
    load = functools.partial(generation_unminted, generation_id=generation_id)
    try:
        view = await runtime.live.extra(token_id, ("generation", generation_id), load)
    except UnknownAgent:
        view = None
    if view is None:  # rolled back by a reorg in between
        raise ApiError(404, "unknown_generation", str(UnknownGeneration(generation_id)))
    async with runtime.engine.connect() as conn:
        body = orjson.dumps(await with_mint(conn, view))
    return versioned_response(request, body, content_etag(body))


async def post_cancel(request: web.Request) -> web.Response:
    generation_id, token_id = await _owned_generation(request)
    runtime = request.app[RUNTIME]
    try:
        view = await cancel(runtime.writer, token_id, generation_id)
    except NotCancellable as exc:
        raise ApiError(409, "not_cancellable", str(exc)) from None
    except (UnknownGeneration, UnknownAgent):
        raise ApiError(404, "unknown_generation", f"no generation {generation_id}") from None
    runtime.hub.poke()  # generation.cancelling reaches the worker holding it, in any process
    return json_response(view, 200 if view["status"] == "cancelled" else 202)


def _page_of(request: web.Request) -> tuple[int, str | None]:
    limit = PAGE
    if (raw := request.query.get("limit")) is not None:
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 4 and 1 <= int(raw) <= MAX_PAGE):
            raise ApiError(400, "bad_limit", f"limit must be an integer from 1 to {MAX_PAGE}")
        limit = int(raw)
    before = request.query.get("before")
    if before is not None and not (0 < len(before) <= 36 and before.isascii()):
        raise ApiError(400, "bad_before", "before must be a generation id (a page's next)")
    return limit, before


async def get_generations(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    if token_id > MAX_STORED_TOKEN_ID:
        raise ApiError(404, "unknown_agent", str(UnknownAgent(token_id)))
    await require_owner(request, token_id)
    limit, before = _page_of(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        page, cursor = await list_generations(conn, token_id, limit, before)
    return json_response({"packageTokenId": token_id, "generations": page, "next": cursor})


# -- content ------------------------------------------------------------------------------


async def get_content(request: web.Request) -> web.Response:
    sha256 = request.match_info["sha256"]
    if not SHA256.fullmatch(sha256):
        raise ApiError(400, "bad_hash", "the address is a sha256 in 64 lowercase hex digits")
    runtime = request.app[RUNTIME]
    async with runtime.engine.connect() as conn:
        content_type = await content_type_of(conn, sha256)
    data = None
    if content_type is not None:
        data = await ContentStore(runtime.settings.content_dir).read(sha256)
    if content_type is None or data is None:
        raise ApiError(404, "unknown_content", f"no generated content has sha256 {sha256}")
    headers = {
        "ETag": f'"{sha256}"',
        "Cache-Control": CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
    }
    if not_modified(request, headers["ETag"]):
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, headers={**headers, "Content-Type": content_type})


# -- the WebSocket command ----------------------------------------------------------------


async def socket_generate(
    runtime: Runtime, principal: Principal, command: dict[str, Any]
) -> Created:
    """``{"type": "generate", "tokenId": N, "kind", "prompt", "options", "idempotencyKey"}``:
    the socket's sign-in must own the agent now."""
    token_id = command.get("tokenId")
    if isinstance(token_id, bool) or not isinstance(token_id, int) or token_id < 0:
        raise ApiError(400, "bad_token_id", "tokenId must be a non-negative integer")
    if principal.address is None and not principal.operator:
        raise ApiError(401, "unauthenticated", "generating needs the owner's sign-in token")
    await owner_or_operator(runtime.live, principal, token_id)
    raw_key = command.get("idempotencyKey")
    if raw_key is not None and not isinstance(raw_key, str):
        raise ApiError(400, "bad_idempotency_key", "idempotencyKey must be a string")
    body = {k: v for k, v in command.items() if k not in ("type", "tokenId", "idempotencyKey")}
    return await queue_generation(runtime, token_id, body, _key_of(raw_key))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/agents/{token_id}/generations", post_generation)
    app.router.add_get("/v1/agents/{token_id}/generations", get_generations)
    app.router.add_get("/v1/generations/{generation_id}", get_generation)
    app.router.add_post("/v1/generations/{generation_id}/cancel", post_cancel)
    app.router.add_post(LEGACY_PATH, legacy_generate)
    app.router.add_get(CONTENT_PATH, get_content)
