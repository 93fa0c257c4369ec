"""Mints: ask the relayer to mint a generation's NFT again after it failed.

    POST /v1/generations/{generation_id}/mint   owner of the generation's agent, or operator
    POST /api/mint-generation-nft               the seed's path: {"generationId": "..."}

202: the mint is pending again with a fresh budget of tries (a succeeded generation that
has no mint yet gets one), and the relayer takes it on its next round; the agent's channel
gets ``mint.requested``. 409 when there is
nothing to ask for: the generation has not succeeded, its NFT exists (``already_minted``),
or a mint is under way (``mint_in_flight``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.errors import UnknownAgent, UnknownGeneration
from inftd.agents.events import NewEvent, record_events
from inftd.daemon.generation.mints import add_mint, mint_json
from inftd.daemon.relayer.store import CONFIRMED, FAILED, MINED, retry_failed
from inftd.daemon.server.access import require_owner, require_signed_in
from inftd.daemon.server.http import RUNTIME, ApiError, json_response, read_json
from inftd.store.models import Generation, Mint

PATH = "/v1/generations/{generation_id}/mint"
LEGACY_PATH = "/api/mint-generation-nft"
SUCCEEDED = "succeeded"
REQUESTED = "mint.requested"  # the event: the mint is pending again (or new)


async def _token_of(request: web.Request, generation_id: str) -> int:
    try:
        return await request.app[RUNTIME].live.generation_token(generation_id)
    except UnknownGeneration as exc:
        raise ApiError(404, "unknown_generation", str(exc)) from None


async def _mint_row(conn: AsyncConnection, generation_id: str) -> Any:
    return (await conn.execute(select(Mint).where(Mint.generation_id == generation_id))).first()


async def _ask_again(conn: AsyncConnection, generation_id: str) -> dict[str, Any]:
    """The mint pending again (or new), as the API shows it; ApiError 409 if it cannot be."""
    status = await conn.scalar(select(Generation.status).where(Generation.id == generation_id))
    if status != SUCCEEDED:
        raise ApiError(
            409, "generation_not_succeeded", f"generation {generation_id} is {status}, not minted"
        )
    row = await _mint_row(conn, generation_id)
    created = row is None  # (add_mint's answer is not to be trusted on PostgreSQL: rowcount -1)
    if row is None:
        await add_mint(conn, generation_id)
        row = await _mint_row(conn, generation_id)
    if row.status in (CONFIRMED, MINED):
        raise ApiError(409, "already_minted", f"generation {generation_id} has its NFT")
    if not created and row.status != FAILED:
        raise ApiError(409, "mint_in_flight", f"the mint of {generation_id} is {row.status}")
    if not created:
        await retry_failed(conn, generation_id)
        row = await _mint_row(conn, generation_id)
    return mint_json(row)


async def _mint(request: web.Request, generation_id: str) -> web.Response:
    require_signed_in(request)  # who asks comes before whether the generation exists
    token_id = await _token_of(request, generation_id)
    await require_owner(request, token_id)
    runtime = request.app[RUNTIME]
    try:
        async with runtime.writer.write(token_id) as (conn, _):
            mint = await _ask_again(conn, generation_id)
            data = {"generationId": generation_id, "mint": mint}
            await record_events(conn, [NewEvent(REQUESTED, token_id, data)])
    except UnknownAgent:  # removed by a reorg since
        raise ApiError(404, "unknown_generation", f"no generation {generation_id}") from None
    runtime.hub.poke()
    return json_response(data, 202)


async def post_mint(request: web.Request) -> web.Response:
    return await _mint(request, request.match_info["generation_id"])


def _legacy_generation_id(body: Any) -> str:
    if not isinstance(body, dict) or set(body) != {"generationId"}:
        raise ApiError(400, "bad_request", 'send {"generationId": "<the generation\'s id>"}')
    generation_id = body["generationId"]
    if not isinstance(generation_id, str):
        raise ApiError(400, "bad_request", "generationId must be a string")
    return generation_id


async def post_legacy_mint(request: web.Request) -> web.Response:
    """The seed's ``/api/mint-generation-nft``: the same, the generation named in the body."""
    require_signed_in(request)
    return await _mint(request, _legacy_generation_id(await read_json(request)))


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, post_mint)
    app.router.add_post(LEGACY_PATH, post_legacy_mint)
