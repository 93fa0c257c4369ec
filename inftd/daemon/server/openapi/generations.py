"""Generations: ask, follow, cancel, fetch content (``inftd.daemon.server.api.generations``)."""

from __future__ import annotations

from typing import Any

from inftd.agents.learning import MAX_SIGNAL_CHARS, MAX_SIGNALS
from inftd.agents.limits import KINDS, QUALITIES
from inftd.daemon.generation.requests import MAX_PROMPT_CHARS, PROVIDERS, STRATEGIES
from inftd.daemon.server.api.generations import (
    CACHE_CONTROL,
    CONTENT_PATH,
    KEY_HEADER,
    LEGACY_PATH,
    MAX_KEY_CHARS,
    MAX_PAGE,
    PAGE,
    REPLAYED_HEADER,
)
from inftd.daemon.server.openapi.parts import (
    BAD_BODY,
    COUNT,
    OWNER,
    STRING,
    TIME,
    VERSIONED_READ,
    Schema,
    answer,
    error,
    json_body,
    nullable,
    obj,
    operation,
    ref,
    versioned,
)
from inftd.daemon.server.openapi.section import Section

TAG = "generations"
AGENT = "/v1/agents/{token_id}/generations"
ONE = "/v1/generations/{generation_id}"
TOKEN = ref("TokenId", "parameters")
GENERATION = ref("LearningGenerationId", "parameters")  # the learning section's
STATUSES = ["queued", "running", "succeeded", "failed", "cancelled"]
NO_NUL = "^[^\\u0000]*$"


def _owner(*bad: str) -> dict[str, Any]:
    """The answers of an owner route: 400 for ``bad`` codes, 401, 403, 404."""
    answers: dict[str, Any] = {
        "401": ref("Unauthorized", "responses"),
        "403": ref("NotOwner", "responses"),
    }
    if bad:
        answers["400"] = error("Bad input", *bad)
    return answers


def _refusals() -> dict[str, Any]:
    """How a create is refused; nothing is reserved then."""
    usage = error(
        "Rate limited, or a usage limit that passes with time (max_concurrent_jobs, "
        "daily_credit_cap; the message names it)",
        "rate_limited",
        "limit_exceeded",
    )
    return {
        "400": error(
            "Bad token id, key or body; a prompt longer than the package allows "
            "(limit_exceeded, naming max_prompt_chars); a kind or quality it has no price for",
            "bad_token_id",
            "bad_idempotency_key",
            *BAD_BODY,
            "limit_exceeded",
            "unpriced_generation",
        ),
        "401": ref("Unauthorized", "responses"),
        "403": error(
            "Not the owner, or the collaborator has not granted this agent",
            "not_owner",
            "no_collaboration",
        ),
        "404": ref("UnknownAgent", "responses"),
        "409": error(
            "Too few credits available, or the key was used for another request",
            "insufficient_credits",
            "idempotency_conflict",
        ),
        "413": ref("BodyTooLarge", "responses"),
        "429": usage,
    }


def _accepted() -> Any:
    accepted = answer(
        "Queued with its credits reserved; or, for a key used before with the same "
        f"request, that generation as it is now (with {REPLAYED_HEADER}: true)",
        ref("Generation"),
    )
    accepted["headers"][REPLAYED_HEADER] = {
        "description": "Present (true) when the key named an earlier generation",
        "schema": {"const": "true"},
    }
    return accepted


def _create() -> Any:
    return operation(
        "createGeneration",
        TAG,
        "Ask the agent for a generation (owner or operator); its price is reserved",
        {"202": _accepted(), **_refusals()},
        limited=False,
        parameters=[TOKEN, ref("IdempotencyKey", "parameters")],
        security=OWNER,
        requestBody=json_body(ref("GenerationRequest"), "What to make"),
    )


def _paths() -> dict[str, Any]:
    return {
        AGENT: {
            "post": _create(),
            "get": operation(
                "listGenerations",
                TAG,
                "The agent's generations, newest first (owner or operator)",
                {
                    "200": answer("A page", ref("GenerationPage")),
                    **_owner("bad_token_id", "bad_limit", "bad_before"),
                    "404": ref("UnknownAgent", "responses"),
                },
                parameters=[
                    TOKEN,
                    ref("GenerationsLimit", "parameters"),
                    ref("GenerationsBefore", "parameters"),
                ],
                security=OWNER,
            ),
        },
        ONE: {
            "get": operation(
                "getGeneration",
                TAG,
                "A generation with its mint (owner of its agent, or operator)",
                {
                    **_owner(),
                    **versioned("The generation", ref("Generation"), '"h<hash of the body>"'),
                    "404": error("No such generation", "unknown_generation"),
                },
                parameters=[GENERATION, *VERSIONED_READ],
                security=OWNER,
            )
        },
        ONE + "/cancel": {
            "post": operation(
                "cancelGeneration",
                TAG,
                "Cancel a generation: a queued one at once, a running one by its worker",
                {
                    "200": answer("Cancelled; its credits released", ref("Generation")),
                    "202": answer(
                        "Running: its worker stops it and releases the credits "
                        "(cancelRequested is true)",
                        ref("Generation"),
                    ),
                    **_owner(),
                    "404": error("No such generation", "unknown_generation"),
                    "409": error("It is finished already", "not_cancellable"),
                },
                parameters=[GENERATION],
                security=OWNER,
            )
        },
        LEGACY_PATH: {
            "post": operation(
                "legacyGenerate",
                TAG,
                "The seed's generate route: createGeneration with the token in the body",
                {"202": _accepted(), **_refusals()},
                limited=False,
                parameters=[ref("IdempotencyKey", "parameters")],
                security=OWNER,
                requestBody=json_body(ref("LegacyGenerateRequest"), "What to make, and for whom"),
            )
        },
        CONTENT_PATH: {
            "get": operation(
                "getContent",
                TAG,
                "Content of a succeeded generation, by its sha256: public and immutable",
                {
                    "200": _content(),
                    "304": answer("Not modified (If-None-Match had its ETag)"),
                    "400": error("Not a sha256 in lowercase hex", "bad_hash"),
                    "404": error("No succeeded generation made it", "unknown_content"),
                },
                parameters=[ref("ContentSha256", "parameters")],
            )
        },
    }


def _content() -> Any:
    content = answer("The bytes, with the type they were made as")
    content["content"] = {
        "text/plain": {"schema": {"type": "string"}},
        "image/png": {"schema": {"type": "string", "format": "binary"}},
        "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        "image/webp": {"schema": {"type": "string", "format": "binary"}},
    }
    content["headers"]["ETag"] = {"description": '"<sha256>"', "schema": STRING}
    content["headers"]["Cache-Control"] = {"schema": {"const": CACHE_CONTROL}}
    return content


def _parameters() -> dict[str, Any]:
    return {
        "IdempotencyKey": {
            "name": KEY_HEADER,
            "in": "header",
            "required": False,
            "description": "Names one request per agent: the same key returns the first "
            "generation, another request with it is refused (409)",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
        },
        "GenerationsLimit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"Generations per page, 1 to {MAX_PAGE} (default {PAGE})",
            "schema": {"type": "string", "pattern": "^[0-9]{1,3}$", "examples": ["1", "20"]},
        },
        "GenerationsBefore": {
            "name": "before",
            "in": "query",
            "required": False,
            "description": "Only generations older than this one: the previous page's next",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,36}$"},
        },
        "ContentSha256": {
            "name": "sha256",
            "in": "path",
            "required": True,
            "description": "The sha256 of the content, in lowercase hex",
            "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        },
    }


def _signals(name: str) -> Schema:
    one = {"type": "string", "minLength": 1, "maxLength": MAX_SIGNAL_CHARS, "pattern": NO_NUL}
    many = {"type": "array", "items": one, "minItems": 1, "maxItems": MAX_SIGNALS}
    return {"anyOf": [one, many], "description": f"Learned from ({name}) and put in the prompt"}


def _request_properties() -> dict[str, Schema]:
    options = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "quality": {"enum": list(QUALITIES)},
            "size": {
                "type": "string",
                "pattern": "^[0-9]{2,4}x[0-9]{2,4}$",
                "description": "Images only: WIDTHxHEIGHT, 64 to 4096 pixels a side",
            },
            "strategy": {"enum": list(STRATEGIES)},
            "provider": {"enum": list(PROVIDERS), "description": "Tried first, if it is up"},
            **{name: _signals(name) for name in ("style", "subject", "modifier")},
            **{name + "s": _signals(name + "s") for name in ("style", "subject", "modifier")},
        },
    }
    return {
        "kind": {"enum": list(KINDS)},
        "prompt": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_PROMPT_CHARS,
            "pattern": NO_NUL,
            "description": "Not blank; the package's max_prompt_chars applies",
        },
        "options": options,
        "collaboratorTokenId": {**COUNT, "description": "An agent that granted this one"},
    }


def _generation() -> Schema:
    mint = obj(
        {
            "status": STRING,
            "requestKey": STRING,
            "txHash": nullable(STRING),
            "tokenId": nullable(COUNT),
            "blockNumber": nullable(COUNT),
        }
    )
    fields: dict[str, Schema] = {
        "id": STRING,
        "packageTokenId": COUNT,
        "kind": {"enum": list(KINDS)},
        "prompt": STRING,
        "options": {"type": "object"},
        "source": {"enum": ["api", "chain"]},
        "status": {"enum": STATUSES},
        "attempts": COUNT,
        "creditsReserved": COUNT,
        "creditsUsed": COUNT,
        "provider": nullable(STRING),
        "model": nullable(STRING),
        "costUsd": {"type": "number", "minimum": 0},
        "contentUri": nullable(STRING),
        "contentHash": nullable(STRING),
        "contentType": nullable(STRING),
        "error": nullable(STRING),
        "cancelRequested": {"type": "boolean"},
        "collaboratorTokenId": nullable(COUNT),
        "chainRequestId": nullable(COUNT),
        "createdAt": nullable(TIME),
        "startedAt": nullable(TIME),
        "finishedAt": nullable(TIME),
        "mint": nullable(mint),
        "detail": {
            **nullable({"type": "object"}),
            "description": "How it was made: strategy, rounds, parts, route, usage, and what "
            "the prompt builder added (absent in lists)",
        },
    }
    return obj(fields, "detail")


def _schemas() -> dict[str, Schema]:
    request = _request_properties()
    legacy = {
        **request,
        "packageTokenId": COUNT,
        "tokenId": {**COUNT, "description": "packageTokenId's other name"},
        "type": {"enum": list(KINDS), "description": "kind's other name"},
    }
    return {
        "GenerationRequest": {
            "type": "object",
            "required": ["kind", "prompt"],
            "additionalProperties": False,
            "properties": request,
        },
        "LegacyGenerateRequest": {
            "type": "object",
            "required": ["prompt"],
            "additionalProperties": False,
            "properties": legacy,
            "description": "packageTokenId (or tokenId), and kind (or type)",
        },
        "Generation": _generation(),
        "GenerationPage": obj(
            {
                "packageTokenId": COUNT,
                "generations": {"type": "array", "items": ref("Generation")},
                "next": {**nullable(STRING), "description": "The before= of the next page"},
            }
        ),
    }


def section() -> Section:
    """Generations and their content."""
    return Section(
        tags={TAG: "Generations: queue, progress, cancel, content"},
        paths=_paths(),
        schemas=_schemas(),
        parameters=_parameters(),
    )
