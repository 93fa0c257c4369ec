"""Mints: asking the relayer again for a generation's NFT (``inftd.daemon.server.api.mints``)."""

from __future__ import annotations

from typing import Any

from inftd.daemon.server.api.mints import LEGACY_PATH, PATH
from inftd.daemon.server.openapi.parts import (
    BAD_BODY,
    COUNT,
    OWNER,
    STRING,
    Schema,
    answer,
    error,
    json_body,
    nullable,
    obj,
    operation,
    ref,
)
from inftd.daemon.server.openapi.section import Section

TAG = "mints"
HASH = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}


def _answers(*, body: bool) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "202": answer("Pending again: the relayer takes it on its next round", ref("MintQueued")),
        "401": ref("Unauthorized", "responses"),
        "403": ref("NotOwner", "responses"),
        "404": error("No such generation (or agent)", "unknown_generation", "unknown_agent"),
        "409": error(
            "The generation has not succeeded, has its NFT, or its mint is under way",
            "generation_not_succeeded",
            "already_minted",
            "mint_in_flight",
        ),
    }
    if body:
        answers["400"] = error("Body not JSON, or not {generationId}", *BAD_BODY)
        answers["413"] = ref("BodyTooLarge", "responses")
    return answers


def _paths() -> dict[str, Any]:
    return {
        PATH: {
            "post": operation(
                "retryMint",
                TAG,
                "Mint a succeeded generation's NFT again after its mint failed (owner of its "
                "agent, or operator); a generation with no mint yet gets one",
                _answers(body=False),
                parameters=[ref("LearningGenerationId", "parameters")],  # the learning section's
                security=OWNER,
            )
        },
        LEGACY_PATH: {
            "post": operation(
                "legacyMintGenerationNft",
                TAG,
                "The seed's path for the same, the generation named in the body",
                _answers(body=True),
                security=OWNER,
                requestBody=json_body(ref("MintRequest"), "The generation to mint"),
            )
        },
    }


def _schemas() -> dict[str, Schema]:
    mint = obj(
        {
            "status": {"enum": ["pending", "sent", "mined", "confirmed", "failed"]},
            "requestKey": {**HASH, "description": "keccak256 of the generation id (UTF-8)"},
            "txHash": nullable(HASH),
            "tokenId": {**nullable(COUNT), "description": "The GenerationNFT's id"},
            "blockNumber": nullable(COUNT),
        }
    )
    return {
        "MintRequest": obj(
            {"generationId": {**STRING, "examples": ["0b6f3c9e-8d2a-4f4e-9a51-3c2d1e0f9a77"]}}
        ),
        "MintQueued": obj({"generationId": STRING, "mint": mint}),
    }


def section() -> Section:
    return Section(
        tags={
            TAG: "Generation NFTs: the relayer mints each succeeded generation once; a failed "
            "mint can be asked for again"
        },
        paths=_paths(),
        schemas=_schemas(),
    )
