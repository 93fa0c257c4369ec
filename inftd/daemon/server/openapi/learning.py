"""The learning routes: feedback, preference patches, reset, learning pages, sharing and
influences (inftd/daemon/server/api/learning.py)."""

from __future__ import annotations

from typing import Any

from inftd.agents import learning, preferences
from inftd.daemon.server.api.learning import MAX_PAGE, MAX_QUERY_DIGITS, PAGE, SHOWN_WEIGHTS
from inftd.daemon.server.openapi.parts import (
    COUNT,
    INT,
    OWNER,
    STRING,
    TIME,
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

TAG = "learning"
NUMBER = {"type": "number"}
STRINGS = {"type": "array", "items": STRING}
BAD_TOKEN = "bad_token_id"


def _owner(*extra: str, body: bool = False) -> dict[str, Any]:
    """The answers every owner route shares; ``extra`` codes join bad_token_id in 400."""
    answers: dict[str, Any] = {
        "400": error("Bad token id, or a body of the wrong shape", BAD_TOKEN, *extra),
        "401": ref("Unauthorized", "responses"),
        "403": ref("NotOwner", "responses"),
        "404": ref("UnknownAgent", "responses"),
    }
    if body:
        answers["413"] = ref("BodyTooLarge", "responses")
    return answers


def _feedback() -> dict[str, Any]:
    return {
        "post": operation(
            "postFeedback",
            TAG,
            "Rate a succeeded generation, once (owner of its agent or operator); the agent "
            "learns from it, and so does a collaborator",
            {
                "201": answer("The learning entry", ref("LearningFeedbackCreated")),
                "400": error("Body not JSON, or not a feedback", "malformed_json", "bad_feedback"),
                "401": ref("Unauthorized", "responses"),
                "403": ref("NotOwner", "responses"),
                "404": error(
                    "No such generation (or agent)", "unknown_generation", "unknown_agent"
                ),
                "409": error(
                    "The generation has not succeeded, or has its feedback already",
                    "generation_not_succeeded",
                    "feedback_exists",
                ),
                "413": ref("BodyTooLarge", "responses"),
            },
            parameters=[ref("LearningGenerationId", "parameters")],
            security=OWNER,
            requestBody=json_body(ref("LearningFeedbackRequest"), "The rating, tags and note"),
        )
    }


def patch_preferences() -> Any:
    """PATCH of the preferences path, which the base section owns (one section per path)."""
    return operation(
        "patchPreferences",
        "agents",
        "Merge a JSON merge patch (RFC 7396) into the preferences: null deletes a key",
        {
            "200": answer("The merged preferences", ref("PreferencesUpdated")),
            **_owner("malformed_json", "bad_preferences", body=True),
        },
        parameters=[ref("TokenId", "parameters")],
        security=OWNER,
        requestBody=json_body(ref("LearningPreferencesPatch"), "The keys to set or delete"),
    )


def _paths() -> dict[str, Any]:
    token = [ref("TokenId", "parameters")]
    agent = "/v1/agents/{token_id}"
    return {
        "/v1/generations/{generation_id}/feedback": _feedback(),
        agent + "/learning/reset": {
            "post": operation(
                "resetLearning",
                TAG,
                "Forget the learned weights and hide the learning entries so far (owner); "
                "experience and level stay",
                {"200": answer("The cleared learning", ref("LearningReset")), **_owner()},
                parameters=token,
                security=OWNER,
            )
        },
        agent + "/learning": {
            "get": operation(
                "getLearning",
                TAG,
                "The agent's level, learned weights and a page of its learning entries",
                {
                    "200": answer("Newest entries first", ref("LearningPage")),
                    "400": error(
                        "Bad token id, limit or before", BAD_TOKEN, "bad_limit", "bad_before"
                    ),
                    "404": ref("UnknownAgent", "responses"),
                },
                parameters=[
                    *token,
                    ref("LearningLimit", "parameters"),
                    ref("LearningBefore", "parameters"),
                ],
            )
        },
        agent + "/sharing": {
            "put": operation(
                "putSharing",
                TAG,
                "Opt in or out of shared (anonymous, cross-agent) learning (owner)",
                {
                    "200": answer("The choice and the influences now", ref("LearningSharing")),
                    **_owner("malformed_json", "bad_request", body=True),
                },
                parameters=token,
                security=OWNER,
                requestBody=json_body(ref("LearningSharingRequest"), "Share or not"),
            )
        },
        agent + "/influences": {
            "get": operation(
                "getInfluences",
                TAG,
                "What the agent absorbs and from where: its collection, its collaborators, "
                "and (opted in) the shared view (owner)",
                {"200": answer("The influences", ref("LearningInfluences")), **_owner()},
                parameters=token,
                security=OWNER,
            )
        },
    }


def _parameters() -> dict[str, Any]:
    digits = {"type": "string", "pattern": f"^[0-9]{{1,{MAX_QUERY_DIGITS}}}$"}
    return {
        "LearningGenerationId": {
            "name": "generation_id",
            "in": "path",
            "required": True,
            "description": "The generation's id",
            "schema": {
                "type": "string",
                "pattern": f"^[A-Za-z0-9_-]{{1,{learning.MAX_ID_CHARS}}}$",
                "examples": ["0b6f3c9e-8d2a-4f4e-9a51-3c2d1e0f9a77"],
            },
        },
        "LearningLimit": {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"Entries per page, 1 to {MAX_PAGE} (default {PAGE})",
            "schema": {**digits, "examples": ["1", str(PAGE)]},
        },
        "LearningBefore": {
            "name": "before",
            "in": "query",
            "required": False,
            "description": "Only entries with ids below this (the nextBefore of a page)",
            "schema": {**digits, "examples": ["1", "100"]},
        },
    }


def _schemas() -> dict[str, Schema]:
    no_nul = "^[^\\u0000]*$"
    value = {"type": ["string", "number", "boolean", "null"], "pattern": no_nul}
    weight = obj({"value": STRING, "weight": NUMBER})
    progress: dict[str, Schema] = {
        "packageTokenId": COUNT,
        "level": INT,
        "experience": COUNT,
        "nextLevelAt": nullable(COUNT),
        "evolution": ref("LearningWeights"),
    }
    score = obj({"style": STRING, "score": NUMBER, "agents": COUNT})
    shared = obj({"style": STRING, "averageRating": NUMBER, "ratings": COUNT})
    return {
        "LearningFeedbackRequest": {
            "type": "object",
            "required": ["rating"],
            "additionalProperties": False,
            "properties": {
                "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                "tags": {
                    "type": "array",
                    "maxItems": learning.MAX_TAGS,
                    "description": "'style:<x>', 'subject:<x>', 'modifier:<x>' or a plain "
                    "modifier; printable, compared in lower case",
                    "items": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": learning.MAX_TAG_CHARS,
                    },
                },
                "note": nullable({"type": "string", "maxLength": learning.MAX_NOTE_CHARS}),
            },
        },
        "LearningRecord": obj(
            {
                "id": COUNT,
                "packageTokenId": COUNT,
                "generationId": nullable(STRING),
                "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                "tags": STRINGS,
                "note": nullable(STRING),
                "createdAt": nullable(TIME),
            }
        ),
        "LearningFeedbackCreated": obj(
            {"entry": ref("LearningRecord"), "level": INT, "experience": COUNT}
        ),
        "LearningWeights": {
            **obj({d: {"type": "array", "items": weight} for d in learning.DIMENSIONS}),
            "description": f"The {SHOWN_WEIGHTS} strongest learned weights per dimension, "
            f"decayed to now (half-life {learning.HALF_LIFE.days} days)",
        },
        "LearningPage": obj(
            {
                **progress,
                "entries": {"type": "array", "items": ref("LearningRecord")},
                "nextBefore": nullable(COUNT),
            }
        ),
        "LearningReset": obj(progress),
        "LearningPreferencesPatch": {
            "type": "object",
            "description": "A JSON merge patch: null deletes a key; the merged preferences "
            f"must fit the Preferences limits ({preferences.MAX_KEYS} keys)",
            "propertyNames": {
                "minLength": 1,
                "maxLength": preferences.MAX_KEY_CHARS,
                "pattern": no_nul,
            },
            "additionalProperties": value,
        },
        "LearningSharingRequest": obj({"shareLearning": {"type": "boolean"}}),
        "LearningSharing": obj(
            {
                "packageTokenId": COUNT,
                "shareLearning": {"type": "boolean"},
                "collectionInfluences": STRINGS,
            }
        ),
        "LearningInfluences": obj(
            {
                "packageTokenId": COUNT,
                "shareLearning": {"type": "boolean"},
                "collectionInfluences": STRINGS,
                "styles": STRINGS,
                "collection": {"type": "array", "items": score},
                "collaborators": {
                    "type": "array",
                    "items": obj({"tokenId": COUNT, "styles": {"type": "array", "items": score}}),
                },
                "shared": nullable({"type": "array", "items": shared}),
            }
        ),
    }


def section() -> Section:
    """Feedback and what agents learn from it."""
    return Section(
        tags={TAG: "Feedback, learned weights, levels, shared learning and influences"},
        paths=_paths(),
        schemas=_schemas(),
        parameters=_parameters(),
    )
