"""Learning: feedback on generations, preferences patches, reset, sharing and influences.

    POST  /v1/generations/{generation_id}/feedback   owner of the generation's agent
    PATCH /v1/agents/{token_id}/preferences          owner: JSON merge patch (null deletes)
    POST  /v1/agents/{token_id}/learning/reset       owner: forget the learned weights
    GET   /v1/agents/{token_id}/learning             public, like the agent's learningData
    PUT   /v1/agents/{token_id}/sharing              owner: opt in/out of shared learning
    GET   /v1/agents/{token_id}/influences           owner: what it absorbs, from where

The influences are the owner's: they hold the anonymous shared view, which only agents
that opted in may see.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import select, update

from inftd.agents.errors import (
    BadFeedback,
    BadPreferences,
    FeedbackExists,
    GenerationNotSucceeded,
    UnknownAgent,
    UnknownGeneration,
)
from inftd.agents.events import NewEvent, record_events
from inftd.agents.influences import influences_of, refresh_influences, refresh_influences_of
from inftd.agents.learning import (
    DIMENSIONS,
    MAX_LEVEL,
    current_weights,
    experience_for,
    generation_token,
    give_feedback,
    learning_entries,
    parse_feedback,
    reset_learning,
)
from inftd.agents.preferences import patch_preferences
from inftd.daemon.server.access import require_owner, require_signed_in
from inftd.daemon.server.api.agents import MAX_STORED_TOKEN_ID, has_nul, token_id_of
from inftd.daemon.server.http import RUNTIME, ApiError, json_response, read_json
from inftd.store.models import Agent

PAGE = 20  # learning entries per page unless ?limit= says otherwise
MAX_PAGE = 100  # the largest ?limit=
MAX_QUERY_DIGITS = 19  # entry ids are BIGINTs
SHOWN_WEIGHTS = 10  # strongest weights shown per dimension


def _query_int(request: web.Request, name: str, low: int, high: int) -> int | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    ok = raw.isascii() and raw.isdigit() and len(raw) <= MAX_QUERY_DIGITS
    if not ok or not low <= int(raw) <= high:
        raise ApiError(400, f"bad_{name}", f"{name} must be an integer from {low} to {high}")
    return int(raw)


def _unknown(exc: UnknownAgent) -> ApiError:
    return ApiError(404, "unknown_agent", str(exc))


def _weights_json(evolution: Any, now: datetime) -> dict[str, list[dict[str, Any]]]:
    weights = current_weights(evolution, now)
    return {
        d: [{"value": v, "weight": w} for v, w in list(weights[d].items())[:SHOWN_WEIGHTS]]
        for d in DIMENSIONS
    }


def _progress(agent: Any) -> dict[str, Any]:
    next_at = experience_for(agent.level + 1) if agent.level < MAX_LEVEL else None
    return {"level": agent.level, "experience": agent.experience, "nextLevelAt": next_at}


async def post_feedback(request: web.Request) -> web.Response:
    generation_id = request.match_info["generation_id"]
    require_signed_in(request)  # who asks comes before whether the generation exists
    runtime = request.app[RUNTIME]
    async with runtime.engine.connect() as conn:
        try:
            token_id = await generation_token(conn, generation_id)
        except UnknownGeneration as exc:
            raise ApiError(404, "unknown_generation", str(exc)) from None
    await require_owner(request, token_id)
    try:
        feedback = parse_feedback(await read_json(request))
    except BadFeedback as exc:
        raise ApiError(400, "bad_feedback", str(exc)) from None
    now = datetime.now(UTC)
    try:
        outcome = await give_feedback(
            runtime.writer,
            runtime.embedder,
            generation_id,
            feedback,
            now,
            runtime.settings.memory.max_per_agent,
        )
        await refresh_influences_of(runtime.writer, token_id, now)
    except UnknownGeneration as exc:
        raise ApiError(404, "unknown_generation", str(exc)) from None
    except GenerationNotSucceeded as exc:
        raise ApiError(409, "generation_not_succeeded", str(exc)) from None
    except FeedbackExists as exc:
        raise ApiError(409, "feedback_exists", str(exc)) from None
    except UnknownAgent as exc:
        raise _unknown(exc) from None
    finally:
        runtime.hub.poke()
    body = {"entry": outcome.entry, "level": outcome.level, "experience": outcome.experience}
    return json_response(body, 201)


async def patch_agent_preferences(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    patch = await read_json(request)
    if has_nul(patch):  # PostgreSQL's jsonb cannot hold it: refused on every database alike
        raise ApiError(400, "bad_preferences", "preferences may not contain NUL (\\u0000)")
    runtime = request.app[RUNTIME]
    try:
        async with runtime.writer.write(token_id) as (conn, agent):
            preferences = await patch_preferences(conn, agent, patch)
    except BadPreferences as exc:
        raise ApiError(400, "bad_preferences", str(exc)) from None
    except UnknownAgent as exc:
        raise _unknown(exc) from None
    runtime.hub.poke()
    return json_response({"packageTokenId": token_id, "preferences": preferences})


async def post_reset(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    runtime = request.app[RUNTIME]
    now = datetime.now(UTC)
    try:
        async with runtime.writer.write(token_id) as (conn, agent):
            evolution = await reset_learning(conn, agent, now)
    except UnknownAgent as exc:
        raise _unknown(exc) from None
    runtime.hub.poke()
    body = {"packageTokenId": token_id, **_progress(agent)}
    return json_response(body | {"evolution": _weights_json(evolution, now)})


async def get_learning(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    limit = _query_int(request, "limit", 1, MAX_PAGE) or PAGE
    before = _query_int(request, "before", 1, MAX_STORED_TOKEN_ID)
    if token_id > MAX_STORED_TOKEN_ID:
        raise _unknown(UnknownAgent(token_id))
    now = datetime.now(UTC)
    async with request.app[RUNTIME].engine.connect() as conn:
        agent = (await conn.execute(select(Agent).where(Agent.token_id == token_id))).first()
        if agent is None:
            raise _unknown(UnknownAgent(token_id))
        entries = await learning_entries(conn, token_id, agent.evolution, limit + 1, before)
    page = entries[:limit]
    body = {"packageTokenId": token_id, **_progress(agent)}
    body |= {"evolution": _weights_json(agent.evolution, now), "entries": page}
    body["nextBefore"] = page[-1]["id"] if len(entries) > limit else None
    return json_response(body)


def _share_flag(body: Any) -> bool:
    if not isinstance(body, dict) or set(body) != {"shareLearning"}:
        raise ApiError(400, "bad_request", 'send {"shareLearning": true} or false')
    flag = body["shareLearning"]
    if not isinstance(flag, bool):
        raise ApiError(400, "bad_request", "shareLearning must be true or false")
    return flag


async def put_sharing(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    share = _share_flag(await read_json(request))
    runtime = request.app[RUNTIME]
    now = datetime.now(UTC)
    try:
        async with runtime.writer.write(token_id) as (conn, _):
            await conn.execute(
                update(Agent).where(Agent.token_id == token_id).values(share_learning=share)
            )
            data = {"fields": ["shareLearning"], "shareLearning": share}
            await record_events(conn, [NewEvent("agent.updated", token_id, data)])
            found = await refresh_influences(conn, token_id, now)
    except UnknownAgent as exc:
        raise _unknown(exc) from None
    runtime.hub.poke()
    body = {"packageTokenId": token_id, "shareLearning": share}
    return json_response(body | {"collectionInfluences": found.styles})


async def get_influences(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    now = datetime.now(UTC)
    async with request.app[RUNTIME].engine.connect() as conn:
        try:
            found = await influences_of(conn, token_id, now)
        except UnknownAgent as exc:
            raise _unknown(exc) from None
        stored = await conn.execute(
            select(Agent.collection_influences, Agent.share_learning).where(
                Agent.token_id == token_id
            )
        )
        row = stored.one()
    body = {
        "packageTokenId": token_id,
        "shareLearning": row.share_learning,
        "collectionInfluences": list(row.collection_influences or []),
    }
    return json_response(body | found.as_json())


def add_routes(app: web.Application) -> None:
    agent = "/v1/agents/{token_id}"
    app.router.add_post("/v1/generations/{generation_id}/feedback", post_feedback)
    app.router.add_patch(agent + "/preferences", patch_agent_preferences)
    app.router.add_post(agent + "/learning/reset", post_reset)
    app.router.add_get(agent + "/learning", get_learning)
    app.router.add_put(agent + "/sharing", put_sharing)
    app.router.add_get(agent + "/influences", get_influences)
