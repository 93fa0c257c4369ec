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

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, WithJsonSchema
from sqlalchemy import select, update

from inftd.agents import learning, preferences
from inftd.agents.errors import UnknownAgent
from inftd.agents.events import NewEvent, record_events
from inftd.agents.influences import (
    Influences,
    Lender,
    SharedStyle,
    StyleScore,
    influences_of,
    refresh_influences,
    refresh_influences_of,
)
from inftd.agents.learning import (
    DIMENSIONS,
    MAX_LEVEL,
    Entry,
    current_weights,
    experience_for,
    generation_token,
    give_feedback,
    learning_entries,
    parse_feedback,
    reset_learning,
)
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.agents.preferences import patch_preferences
from inftd.daemon.auth.tokens import Principal
from inftd.daemon.server.access import require_owner, require_signed_in
from inftd.daemon.server.contract.routes import OWNER, UNAUTHORIZED, Answer, Auth, Routes
from inftd.daemon.server.contract.wire import (
    MAX_BIGINT,
    NO_NUL,
    Body,
    Code,
    Count,
    GenerationId,
    NoNul,
    Query,
    Time,
    TokenId,
    Visible,
    Wire,
)
from inftd.daemon.server.http import RUNTIME
from inftd.store.models import Agent

ROUTES = Routes("learning", "Feedback, learned weights, levels, shared learning and influences")
# The PATCH sits with the agents' other preferences route in the document.
AGENT_ROUTES = Routes("agents", "The agents of package tokens")
AGENT = "/v1/agents/{token_id}"
PAGE = 20  # learning entries per page unless ?limit= says otherwise
MAX_PAGE = 100  # the largest ?limit=
SHOWN_WEIGHTS = 10  # strongest weights shown per dimension
LISTED = 10  # influences listed per source
Rating = Annotated[int, Field(ge=1, le=5)]


# -- requests ------------------------------------------------------------------------------


class LearningFeedbackRequest(Body):
    error_code = "bad_feedback"
    rating: Rating
    tags: (
        Annotated[
            list[Annotated[Visible, Field(max_length=learning.MAX_TAG_CHARS)]],
            Field(max_length=learning.MAX_TAGS),
        ]
        | None
    ) = Field(
        None,
        description="'style:<x>', 'subject:<x>', 'modifier:<x>' or a plain modifier; "
        "printable, compared in lower case",
    )
    note: Annotated[NoNul, Field(max_length=learning.MAX_NOTE_CHARS)] | None = None


PreferenceKey = Annotated[NoNul, Field(min_length=1, max_length=preferences.MAX_KEY_CHARS)]
PreferenceValue = NoNul | int | Annotated[float, Field(allow_inf_nan=False)] | bool
LearningPreferencesPatch = Annotated[
    dict[PreferenceKey, PreferenceValue | None],
    # Spelled out: pydantic writes a key's pattern as patternProperties, which would let
    # any other key through.
    WithJsonSchema(
        {
            "type": "object",
            "description": "A JSON merge patch: null deletes a key; the merged preferences "
            f"must fit the Preferences limits ({preferences.MAX_KEYS} keys, "
            f"{preferences.MAX_BYTES} bytes as compact JSON)",
            "propertyNames": {
                "minLength": 1,
                "maxLength": preferences.MAX_KEY_CHARS,
                "pattern": NO_NUL,
            },
            "additionalProperties": {
                "anyOf": [
                    {"type": "string", "pattern": NO_NUL},
                    {"type": "number"},
                    {"type": "boolean"},
                    {"type": "null"},
                ]
            },
        }
    ),
    Code("bad_preferences"),
]


class LearningSharingRequest(Body):
    share_learning: bool


class LearningPageQuery(Query):
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE), Code("bad_limit")] = Field(
        PAGE, description=f"Entries per page, 1 to {MAX_PAGE}", examples=[1, PAGE]
    )
    # Code at the top: pydantic keeps no metadata of one member of a union for the field.
    before: Annotated[Annotated[int, Field(ge=1, le=MAX_BIGINT)] | None, Code("bad_before")] = (
        Field(None, description="Only entries with ids below this (the nextBefore of a page)")
    )


# -- answers -------------------------------------------------------------------------------


class LearningRecord(Wire):
    id: Count
    package_token_id: Count
    generation_id: str | None
    rating: Rating
    tags: list[str]
    note: str | None
    created_at: Time | None

    @classmethod
    def of(cls, entry: Entry) -> LearningRecord:
        return cls(
            id=entry.id,
            package_token_id=entry.token_id,
            generation_id=entry.generation_id,
            rating=entry.rating,
            tags=entry.tags,
            note=entry.note,
            created_at=entry.created_at,
        )


class LearningFeedbackCreated(Wire):
    entry: LearningRecord
    level: int
    experience: Count


class LearningWeight(Wire):
    value: str
    weight: float


class LearningWeights(Wire):
    """The strongest learned weights per dimension, decayed to now."""

    styles: list[LearningWeight]
    subjects: list[LearningWeight]
    modifiers: list[LearningWeight]
    providers: list[LearningWeight]
    models: list[LearningWeight]

    @classmethod
    def of(cls, evolution: Mapping[str, Any] | None, now: datetime) -> LearningWeights:
        weights = current_weights(evolution, now)
        shown = {
            dimension: [
                LearningWeight(value=value, weight=weight)
                for value, weight in list(weights[dimension].items())[:SHOWN_WEIGHTS]
            ]
            for dimension in DIMENSIONS
        }
        return cls.model_validate(shown)


class LearningReset(Wire):
    package_token_id: Count
    level: int
    experience: Count
    next_level_at: Count | None = Field(description="null at the highest level")
    evolution: LearningWeights


class LearningPage(Wire):
    package_token_id: Count
    level: int
    experience: Count
    next_level_at: Count | None = Field(description="null at the highest level")
    evolution: LearningWeights
    entries: list[LearningRecord] = Field(description="Newest first")
    next_before: Count | None = Field(description="Pass as before for more")


class PreferencesPatched(Wire):
    package_token_id: Count
    preferences: Annotated[
        dict[str, str | int | float | bool], Field(max_length=preferences.MAX_KEYS)
    ]


class LearningSharing(Wire):
    package_token_id: Count
    share_learning: bool
    collection_influences: list[str]


class InfluenceScore(Wire):
    style: str
    score: float
    agents: Count

    @classmethod
    def of(cls, found: StyleScore) -> InfluenceScore:
        return cls(style=found.style, score=round(found.score, 4), agents=found.agents)


class InfluenceLender(Wire):
    token_id: Count
    styles: list[InfluenceScore]

    @classmethod
    def of(cls, lender: Lender) -> InfluenceLender:
        return cls(token_id=lender.token_id, styles=[InfluenceScore.of(s) for s in lender.styles])


class InfluenceShared(Wire):
    style: str
    average_rating: float
    ratings: Count

    @classmethod
    def of(cls, shared: SharedStyle) -> InfluenceShared:
        rating = round(shared.average_rating, 2)
        return cls(style=shared.style, average_rating=rating, ratings=shared.ratings)


class LearningInfluences(Wire):
    package_token_id: Count
    share_learning: bool
    collection_influences: list[str]
    styles: list[str]
    collection: list[InfluenceScore]
    collaborators: list[InfluenceLender]
    shared: list[InfluenceShared] | None = Field(description="null unless the agent opted in")

    @classmethod
    def of(cls, token_id: int, row: Any, found: Influences) -> LearningInfluences:
        shared = found.shared
        return cls(
            package_token_id=token_id,
            share_learning=row.share_learning,
            collection_influences=list(row.collection_influences or []),
            styles=found.styles,
            collection=[InfluenceScore.of(s) for s in found.collection[:LISTED]],
            collaborators=[InfluenceLender.of(lender) for lender in found.collaborators],
            shared=None if shared is None else [InfluenceShared.of(s) for s in shared[:LISTED]],
        )


def _next_level_at(agent: Any) -> int | None:
    return experience_for(agent.level + 1) if agent.level < MAX_LEVEL else None


# -- routes --------------------------------------------------------------------------------


async def _generation_owner(request: web.Request, path: Mapping[str, Any]) -> Principal:
    """Who asks comes before whether the generation exists, which names the owner asked."""
    require_signed_in(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        token_id = await generation_token(conn, path["generation_id"])
    return await require_owner(request, token_id)


# The owner of the agent whose generation it is, or the operator.
GENERATION_OWNER = Auth(
    OWNER.security,
    {401: UNAUTHORIZED, 403: ("not_owner",), 404: ("unknown_generation", "unknown_agent")},
    _generation_owner,
)


@ROUTES.post(
    "/v1/generations/{generation_id}/feedback",
    "postFeedback",
    "Rate a succeeded generation, once (owner of its agent or operator); the agent learns "
    "from it, and so does a collaborator",
    auth=GENERATION_OWNER,
    ok=Answer("The learning entry", LearningFeedbackCreated, status=201),
    errors={409: ("generation_not_succeeded", "feedback_exists"), 502: ("embedding_failed",)},
)
async def post_feedback(
    request: web.Request, generation_id: GenerationId, body: LearningFeedbackRequest
) -> LearningFeedbackCreated:
    runtime = request.app[RUNTIME]
    feedback = parse_feedback(body.model_dump())  # the domain's own spelling of tags and note
    now = datetime.now(UTC)
    bound = runtime.settings.memory.max_per_agent
    try:
        outcome = await give_feedback(
            runtime.writer, runtime.embedder, generation_id, feedback, now, bound
        )
        await refresh_influences_of(runtime.writer, outcome.entry.token_id, now)
    finally:
        runtime.hub.poke()
    entry = LearningRecord.of(outcome.entry)
    return LearningFeedbackCreated(entry=entry, level=outcome.level, experience=outcome.experience)


@AGENT_ROUTES.patch(
    AGENT + "/preferences",
    "patchPreferences",
    "Merge a JSON merge patch (RFC 7396) into the preferences: null deletes a key",
    auth=OWNER,
    ok=Answer("The merged preferences", PreferencesPatched),
)
async def patch_agent_preferences(
    request: web.Request, token_id: TokenId, body: LearningPreferencesPatch
) -> PreferencesPatched:
    runtime = request.app[RUNTIME]
    async with runtime.writer.write(token_id) as (conn, agent):
        merged = await patch_preferences(conn, agent, body)
    runtime.hub.poke()
    return PreferencesPatched(package_token_id=token_id, preferences=merged)


@ROUTES.post(
    AGENT + "/learning/reset",
    "resetLearning",
    "Forget the learned weights and hide the learning entries so far (owner); experience "
    "and level stay",
    auth=OWNER,
    ok=Answer("The cleared learning", LearningReset),
)
async def post_reset(request: web.Request, token_id: TokenId) -> LearningReset:
    runtime = request.app[RUNTIME]
    now = datetime.now(UTC)
    async with runtime.writer.write(token_id) as (conn, agent):
        evolution = await reset_learning(conn, agent, now)
    runtime.hub.poke()
    return LearningReset(
        package_token_id=token_id,
        level=agent.level,
        experience=agent.experience,
        next_level_at=_next_level_at(agent),
        evolution=LearningWeights.of(evolution, now),
    )


@ROUTES.get(
    AGENT + "/learning",
    "getLearning",
    "The agent's level, learned weights and a page of its learning entries",
    ok=Answer("Newest entries first", LearningPage),
    errors={404: ("unknown_agent",)},
)
async def get_learning(
    request: web.Request, token_id: TokenId, query: LearningPageQuery
) -> LearningPage:
    if token_id > MAX_STORED_TOKEN_ID:  # a token id, but no stored agent can have it
        raise UnknownAgent(token_id)
    now = datetime.now(UTC)
    async with request.app[RUNTIME].engine.connect() as conn:
        agent = (await conn.execute(select(Agent).where(Agent.token_id == token_id))).first()
        if agent is None:
            raise UnknownAgent(token_id)
        found = await learning_entries(
            conn, token_id, agent.evolution, query.limit + 1, query.before
        )
    page = found[: query.limit]
    return LearningPage(
        package_token_id=token_id,
        level=agent.level,
        experience=agent.experience,
        next_level_at=_next_level_at(agent),
        evolution=LearningWeights.of(agent.evolution, now),
        entries=[LearningRecord.of(entry) for entry in page],
        next_before=page[-1].id if len(found) > query.limit else None,
    )


@ROUTES.put(
    AGENT + "/sharing",
    "putSharing",
    "Opt in or out of shared (anonymous, cross-agent) learning (owner)",
    auth=OWNER,
    ok=Answer("The choice and the influences now", LearningSharing),
)
async def put_sharing(
    request: web.Request, token_id: TokenId, body: LearningSharingRequest
) -> LearningSharing:
    runtime = request.app[RUNTIME]
    share = body.share_learning
    now = datetime.now(UTC)
    async with runtime.writer.write(token_id) as (conn, _):
        await conn.execute(
            update(Agent).where(Agent.token_id == token_id).values(share_learning=share)
        )
        data = {"fields": ["shareLearning"], "shareLearning": share}
        await record_events(conn, [NewEvent("agent.updated", token_id, data)])
        found = await refresh_influences(conn, token_id, now)
    runtime.hub.poke()
    return LearningSharing(
        package_token_id=token_id, share_learning=share, collection_influences=found.styles
    )


@ROUTES.get(
    AGENT + "/influences",
    "getInfluences",
    "What the agent absorbs and from where: its collection, its collaborators, and (opted "
    "in) the shared view (owner)",
    auth=OWNER,
    ok=Answer("The influences", LearningInfluences),
)
async def get_influences(request: web.Request, token_id: TokenId) -> LearningInfluences:
    now = datetime.now(UTC)
    async with request.app[RUNTIME].engine.connect() as conn:
        found = await influences_of(conn, token_id, now)
        stored = await conn.execute(
            select(Agent.collection_influences, Agent.share_learning).where(
                Agent.token_id == token_id
            )
        )
        row = stored.one()
    return LearningInfluences.of(token_id, row, found)


def add_routes(app: web.Application) -> None:
    ROUTES.add_to(app)
    AGENT_ROUTES.add_to(app)
