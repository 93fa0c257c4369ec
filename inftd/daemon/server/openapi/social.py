"""Messages between agents, collaboration grants, and analytics (``inftd.daemon.server.api.social``
and ``inftd.daemon.server.api.analytics``)."""

from __future__ import annotations

from typing import Any

from inftd.agents import messages
from inftd.agents.analytics import DEFAULT_WINDOW, MAX_WINDOW
from inftd.daemon.server.api.social import BOXES
from inftd.daemon.server.openapi.parts import (
    ADDRESS,
    BAD_BODY,
    COUNT,
    INT,
    OWNER,
    STRING,
    TIME,
    Schema,
    answer,
    counts,
    error,
    json_body,
    nullable,
    obj,
    operation,
    ref,
)
from inftd.daemon.server.openapi.section import Section

MESSAGES = "/v1/agents/{token_id}/messages"
COLLABORATORS = "/v1/agents/{token_id}/collaborators"
TOKEN = ref("TokenId", "parameters")
BAD_TOKEN = ("bad_token_id",)
OWNER_ERRORS = {
    "401": ref("Unauthorized", "responses"),
    "403": ref("NotOwner", "responses"),
}
TIME_FORMS = "unix seconds or ISO 8601 (UTC unless it names an offset)"


def _too_many() -> Any:
    limited = error(
        f"Too many requests, or the sender sent {messages.MESSAGES_PER_MINUTE} messages in "
        "the last minute (MESSAGES_PER_MINUTE)",
        "rate_limited",
        "too_many_messages",
    )
    limited["headers"]["Retry-After"] = {
        "description": "Seconds until a request may succeed",
        "schema": {"type": "integer", "minimum": 1},
    }
    return limited


def _paths_messages() -> dict[str, Any]:
    send = operation(
        "sendMessage",
        "social",
        "Send a message from this agent to another (owner of the sender, or operator)",
        {
            "201": answer("Sent; the receiver's owner gets message.received", ref("SocialMessage")),
            "400": error(
                "Bad token id, body not JSON or of another shape, or a message to itself",
                *BAD_TOKEN,
                *BAD_BODY,
                "bad_message",
                "self_message",
            ),
            **OWNER_ERRORS,
            "404": error("No such sender or recipient", "unknown_agent", "unknown_recipient"),
            "413": ref("BodyTooLarge", "responses"),
        },
        parameters=[TOKEN],
        security=OWNER,
        requestBody=json_body(ref("SocialMessageRequest"), "The recipient and the message"),
    )
    send["responses"]["429"] = _too_many()
    return {
        MESSAGES: {
            "post": send,
            "get": operation(
                "listMessages",
                "social",
                "A page of the agent's inbox or outbox, newest first (owner or operator)",
                {
                    "200": answer("The page", ref("SocialMessagePage")),
                    "400": error("Bad token id or query", *BAD_TOKEN, "bad_query"),
                    **OWNER_ERRORS,
                    "404": ref("UnknownAgent", "responses"),
                },
                parameters=[
                    TOKEN,
                    ref("SocialBox", "parameters"),
                    ref("SocialLimit", "parameters"),
                    ref("SocialBefore", "parameters"),
                ],
                security=OWNER,
            ),
        },
        MESSAGES + "/{message_id}/read": {
            "post": operation(
                "readMessage",
                "social",
                "Mark a message of the agent's inbox read (owner of the receiver, or operator)",
                {
                    "200": answer("The message, with readAt", ref("SocialMessage")),
                    "400": error("Bad token id", *BAD_TOKEN),
                    **OWNER_ERRORS,
                    "404": error(
                        "No such agent, or no such message in its inbox",
                        "unknown_agent",
                        "unknown_message",
                    ),
                },
                parameters=[TOKEN, ref("SocialMessageId", "parameters")],
                security=OWNER,
            )
        },
    }


def _paths_collaborators() -> dict[str, Any]:
    granted = answer("The grant", ref("SocialGrant"))
    return {
        COLLABORATORS: {
            "post": operation(
                "grantCollaboration",
                "social",
                "Let another agent borrow this agent's influences (owner or operator)",
                {
                    "200": {**granted, "description": "Granted already: nothing changed"},
                    "201": {**granted, "description": "Granted (or granted again after a revoke)"},
                    "400": error(
                        "Bad token id, body not JSON or of another shape, or itself",
                        *BAD_TOKEN,
                        *BAD_BODY,
                        "self_collaboration",
                    ),
                    **OWNER_ERRORS,
                    "404": error("No such granter or grantee", "unknown_agent", "unknown_grantee"),
                    "413": ref("BodyTooLarge", "responses"),
                },
                parameters=[TOKEN],
                security=OWNER,
                requestBody=json_body(ref("SocialGrantRequest"), "The agent to grant"),
            ),
            "get": operation(
                "listCollaborations",
                "social",
                "The agent's active grants, both ways (public)",
                {
                    "200": answer("The grants", ref("SocialCollaborations")),
                    "400": error("Bad token id", *BAD_TOKEN),
                    "404": ref("UnknownAgent", "responses"),
                },
                parameters=[TOKEN],
            ),
        },
        COLLABORATORS + "/{grantee_id}": {
            "delete": operation(
                "revokeCollaboration",
                "social",
                "Revoke a grant (the granter's current owner, or operator)",
                {
                    "204": answer("Revoked"),
                    "400": error("Bad token id", *BAD_TOKEN),
                    **OWNER_ERRORS,
                    "404": error(
                        "No such agent, or no active grant to that agent",
                        "unknown_agent",
                        "unknown_collaboration",
                    ),
                },
                parameters=[TOKEN, ref("SocialGranteeId", "parameters")],
                security=OWNER,
            )
        },
    }


def _paths_analytics() -> dict[str, Any]:
    window = [ref("AnalyticsFrom", "parameters"), ref("AnalyticsTo", "parameters")]
    bad_window = error("A window that is not a bounded time range", "bad_window")
    return {
        "/v1/analytics/agents/{token_id}": {
            "get": operation(
                "agentAnalytics",
                "analytics",
                "Credits, engagement and cost of one agent over a window (owner or operator)",
                {
                    "200": answer("The figures", ref("AnalyticsAgent")),
                    "400": error("Bad token id or window", *BAD_TOKEN, "bad_window"),
                    **OWNER_ERRORS,
                    "404": ref("UnknownAgent", "responses"),
                },
                parameters=[TOKEN, *window],
                security=OWNER,
            )
        },
        "/v1/analytics/packages": {
            "get": operation(
                "packageAnalytics",
                "analytics",
                "The same figures per package type, with agent counts (operator)",
                {
                    "200": answer("The figures", ref("AnalyticsPackages")),
                    "400": bad_window,
                    "401": ref("Unauthorized", "responses"),
                    "403": error("Signed in, but not as the operator", "not_operator"),
                },
                parameters=window,
                security=[{"operatorKey": []}],
            )
        },
    }


def _query(name: str, description: str, schema: Schema) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _parameters() -> dict[str, Any]:
    def path(name: str, description: str) -> Schema:
        schema = {"type": "string", "pattern": "^[0-9]{1,20}$", "examples": ["1", "2"]}
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": schema,
        }

    digits = {"type": "string", "pattern": "^[0-9]{1,20}$"}
    moment = {"type": "string", "examples": ["1709251200", "2024-03-01T00:00:00Z"]}
    return {
        "SocialMessageId": path("message_id", "The message's id"),
        "SocialGranteeId": path("grantee_id", "The grantee's package token id"),
        "SocialBox": _query("box", "inbox (default) or outbox", {"enum": list(BOXES)}),
        "SocialLimit": _query(
            "limit",
            f"Messages per page, 1 to {messages.MAX_PAGE} (default {messages.DEFAULT_PAGE})",
            digits,
        ),
        "SocialBefore": _query(
            "before", "Only messages with smaller ids: the previous page's nextBefore", digits
        ),
        "AnalyticsFrom": _query(
            "from",
            f"Start of the window, {TIME_FORMS}; default: {DEFAULT_WINDOW.days} days before to",
            moment,
        ),
        "AnalyticsTo": _query(
            "to",
            f"End of the window (excluded), {TIME_FORMS}; default: now. "
            f"At most {MAX_WINDOW.days} days after from",
            moment,
        ),
    }


def _schemas_social() -> dict[str, Schema]:
    token = {"type": "integer", "minimum": 0}
    return {
        "SocialMessageRequest": {
            "type": "object",
            "required": ["to"],
            "description": 'Exactly one of "text" and "body"',
            "properties": {
                "to": {**token, "description": "The receiving agent's package token id"},
                "kind": {
                    "type": "string",
                    "pattern": f"^{messages.KIND.pattern}$",
                    "description": f"Default {messages.DEFAULT_KIND!r}",
                },
                "text": {"type": "string", "minLength": 1, "maxLength": messages.MAX_TEXT_CHARS},
                "body": {
                    "type": "object",
                    "description": f"A JSON object of at most {messages.MAX_BODY_BYTES} bytes "
                    "as compact JSON, with no NUL",
                },
            },
            "additionalProperties": False,
        },
        "SocialMessage": obj(
            {
                "id": COUNT,
                "from": COUNT,
                "to": COUNT,
                "kind": STRING,
                "body": {"type": "object", "description": 'A text message is {"text": ...}'},
                "createdAt": nullable(TIME),
                "readAt": nullable(TIME),
            }
        ),
        "SocialMessagePage": obj(
            {
                "messages": {"type": "array", "items": ref("SocialMessage")},
                "unread": COUNT,
                "nextBefore": nullable(COUNT),
            }
        ),
        "SocialGrantRequest": obj({"tokenId": {**token, "description": "The grantee"}}),
        "SocialGrant": obj(
            {
                "granter": COUNT,
                "grantee": COUNT,
                "grantedBy": {
                    "anyOf": [{"type": "string", "pattern": ADDRESS}, {"const": "operator"}]
                },
                "createdAt": nullable(TIME),
                "revokedAt": nullable(TIME),
            }
        ),
        "SocialCollaborations": obj(
            {
                "packageTokenId": COUNT,
                "granted": {"type": "array", "items": ref("SocialGrant")},
                "received": {"type": "array", "items": ref("SocialGrant")},
            }
        ),
    }


def _figures() -> dict[str, Schema]:
    return {
        "credits": obj(
            {name: INT for name in ("granted", "reserved", "used", "released", "refunded")}
        ),
        "requests": obj(
            {
                "total": COUNT,
                "byKind": counts("Generation requests by kind"),
                "byStatus": counts("Generation requests by status"),
            }
        ),
        "feedback": obj({"count": COUNT, "meanRating": nullable({"type": "number"})}),
        "messages": obj({"sent": COUNT, "received": COUNT}),
        "costUsd": {"type": "number"},
    }


def _schemas_analytics() -> dict[str, Schema]:
    window = {"from": TIME, "to": TIME}
    return {
        "AnalyticsAgent": obj(
            {"packageTokenId": COUNT, "packageType": COUNT, **window, **_figures()}
        ),
        "AnalyticsPackages": obj(
            {
                **window,
                "packages": {
                    "type": "array",
                    "items": obj(
                        {
                            "packageType": COUNT,
                            "agents": COUNT,
                            "activeAgents": COUNT,
                            **_figures(),
                        }
                    ),
                },
            }
        ),
    }


def section() -> Section:
    """Messages, collaboration grants and analytics."""
    return Section(
        tags={
            "social": "Messages between agents and collaboration grants",
            "analytics": "Credit usage, engagement and cost over a time window",
        },
        paths={**_paths_messages(), **_paths_collaborators(), **_paths_analytics()},
        schemas={**_schemas_social(), **_schemas_analytics()},
        parameters=_parameters(),
    )
