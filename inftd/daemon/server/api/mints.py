"""Mints: ask the relayer to mint a generation's NFT again after it failed.

    POST /v1/generations/{generation_id}/mint   owner of the generation's agent, or operator
    POST /api/mint-generation-nft               the seed's path: {"generationId": "..."}

202: the mint is pending again with a fresh budget of tries (a succeeded generation that
has no mint yet gets one), and the relayer takes it on its next round; the agent's channel
gets ``mint.requested``. 409 when there is nothing to ask for: the generation has not
succeeded, its NFT exists (``already_minted``), or a mint is under way (``mint_in_flight``).
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from inftd.agents.errors import UnknownAgent
from inftd.agents.events import NewEvent, record_events
from inftd.daemon.generation.mints import add_mint
from inftd.daemon.relayer.store import CONFIRMED, FAILED, MINED, retry_failed
from inftd.daemon.server.access import require_owner
from inftd.daemon.server.contract.routes import SIGNED_IN, Answer, Routes
from inftd.daemon.server.contract.wire import Body, Count, GenerationId, Wire
from inftd.daemon.server.http import RUNTIME, ApiError
from inftd.store.models import Generation, Mint

ROUTES = Routes(
    "mints",
    "Generation NFTs: the relayer mints each succeeded generation once; a failed mint can "
    "be asked for again",
)
PATH = "/v1/generations/{generation_id}/mint"
LEGACY_PATH = "/api/mint-generation-nft"
SUCCEEDED = "succeeded"
REQUESTED = "mint.requested"  # the event: the mint is pending again (or new)
HASH = "^0x[0-9a-f]{64}$"


class MintState(Wire):
    status: Literal["pending", "sent", "mined", "confirmed", "failed"]
    request_key: str = Field(pattern=HASH, description="keccak256 of the generation id (UTF-8)")
    tx_hash: str | None = Field(pattern=HASH)
    token_id: Count | None = Field(description="The GenerationNFT's id")
    block_number: Count | None


class MintQueued(Wire):
    generation_id: str
    mint: MintState


class MintRequest(Body):
    generation_id: str = Field(examples=["0b6f3c9e-8d2a-4f4e-9a51-3c2d1e0f9a77"])


def _state(row: Any) -> MintState:
    return MintState(
        status=row.status,
        request_key=row.request_key,
        tx_hash=row.tx_hash,
        token_id=row.nft_token_id,
        block_number=row.block_number,
    )


async def _mint_row(conn: AsyncConnection, generation_id: str) -> Any:
    return (await conn.execute(select(Mint).where(Mint.generation_id == generation_id))).first()


async def _ask_again(conn: AsyncConnection, generation_id: str) -> MintState:
    """The mint pending again (or new); ApiError 409 if it cannot be."""
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
    return _state(row)


async def _mint(request: web.Request, generation_id: str) -> MintQueued:
    runtime = request.app[RUNTIME]
    token_id = await runtime.live.generation_token(generation_id)  # or UnknownGeneration
    await require_owner(request, token_id)
    try:
        async with runtime.writer.write(token_id) as (conn, _):
            queued = MintQueued(
                generation_id=generation_id, mint=await _ask_again(conn, generation_id)
            )
            data = queued.model_dump(mode="json", by_alias=True)
            await record_events(conn, [NewEvent(REQUESTED, token_id, data)])
    except UnknownAgent:  # removed by a reorg since: so is the generation
        raise ApiError(404, "unknown_generation", f"no generation {generation_id}") from None
    runtime.hub.poke()
    return queued


QUEUED = Answer("Pending again: the relayer takes it on its next round", MintQueued, status=202)
REFUSED = {
    403: ("not_owner",),
    404: ("unknown_generation", "unknown_agent"),
    409: ("generation_not_succeeded", "already_minted", "mint_in_flight"),
}


@ROUTES.post(
    PATH,
    "retryMint",
    "Mint a succeeded generation's NFT again after its mint failed (owner of its agent, or "
    "operator); a generation with no mint yet gets one",
    auth=SIGNED_IN,  # who asks comes before whether the generation exists; its owner after
    ok=QUEUED,
    errors=REFUSED,
)
async def post_mint(request: web.Request, generation_id: GenerationId) -> MintQueued:
    return await _mint(request, generation_id)


@ROUTES.post(
    LEGACY_PATH,
    "legacyMintGenerationNft",
    "The seed's path for the same, the generation named in the body",
    auth=SIGNED_IN,
    ok=QUEUED,
    errors=REFUSED,
)
async def post_legacy_mint(request: web.Request, body: MintRequest) -> MintQueued:
    return await _mint(request, body.generation_id)


add_routes = ROUTES.add_to
