"""What every operation of the document shares: the answers' headers, the error shape, the
shared answers (rate limited, busy, unauthorized...), the credentials, the pushes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inftd.daemon.server.api.push import AgentEvent
from inftd.daemon.server.api.ws import CLOSE_TOO_SLOW, MAX_CLIENT_MESSAGE
from inftd.indexer.webhook import REPLAY_WINDOW, SIGNATURE_HEADER, TIMESTAMP_HEADER

Schema = dict[str, Any]
STRING: Schema = {"type": "string"}
RETRY_AFTER: Schema = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 1},
}


def ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def answer(description: str, schema: Schema | None = None, media: str = "application/json") -> Any:
    response: dict[str, Any] = {
        "description": description,
        "headers": {
            "X-Request-Id": ref("RequestId", "headers"),
            "X-Inftd-Seq": ref("Seq", "headers"),
        },
    }
    if schema is not None:
        response["content"] = {media: {"schema": schema}}
    return response


def error(description: str, *codes: str) -> Any:
    """An error answer whose ``error.code`` is one of ``codes``."""
    narrowed = {"properties": {"error": {"properties": {"code": {"enum": list(codes)}}}}}
    return answer(description, {"allOf": [ref("Error"), narrowed]})


# Shared error answers, by name: (status, description, codes). An operation whose codes for
# a status are exactly these refers to the shared answer.
SHARED_ERRORS: dict[str, tuple[int, str, tuple[str, ...]]] = {
    "RateLimited": (429, "Too many requests from this IP or address", ("rate_limited",)),
    "InternalError": (
        500,
        "An unexpected failure (logged with the request id)",
        ("internal_error",),
    ),
    "Busy": (503, "Every database connection stayed busy; try again shortly", ("busy",)),
    "BodyTooLarge": (
        413,
        "The body is larger than the server accepts",
        ("request_entity_too_large",),
    ),
    "Unauthorized": (
        401,
        "No credentials, or ones that are not valid",
        ("unauthenticated", "invalid_token", "token_expired"),
    ),
    "NotOwner": (403, "Signed in, but not as the agent's current owner", ("not_owner",)),
    "UnknownAgent": (404, "No agent for that token id", ("unknown_agent",)),
}
WITH_RETRY_AFTER = frozenset({"RateLimited", "Busy"})


def shared_responses(max_body_bytes: int) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for name, (_, description, codes) in SHARED_ERRORS.items():
        responses[name] = error(description, *codes)
        if name in WITH_RETRY_AFTER:
            responses[name]["headers"]["Retry-After"] = RETRY_AFTER
    responses["BodyTooLarge"]["description"] = f"The body is larger than {max_body_bytes} bytes"
    not_modified = answer("Unchanged since the ETag in If-None-Match: no body")
    not_modified["headers"]["ETag"] = {"schema": STRING}
    responses["NotModified"] = not_modified
    return responses


def shared_components() -> dict[str, Any]:
    """The schemas, parameters and headers every document has."""
    detail = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": STRING, "message": STRING},
        "additionalProperties": False,
    }
    return {
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {"error": ref("ErrorDetail")},
                "additionalProperties": False,
            },
            "ErrorDetail": detail,
        },
        "parameters": {
            "MinSeq": {
                "name": "minSeq",
                "in": "query",
                "required": False,
                "description": "Wait (briefly) until this process holds every event up to this "
                "seq: the X-Inftd-Seq of a write's answer from another process",
                "schema": {"type": "string", "pattern": "^[0-9]{1,19}$", "examples": ["1"]},
            },
            "IfNoneMatch": {
                "name": "If-None-Match",
                "in": "header",
                "required": False,
                "description": "ETags the client has: 304 with no body if one is current",
                "schema": STRING,
            },
        },
        "headers": {
            "RequestId": {
                "description": "The request's id, also in the server's log lines",
                "schema": STRING,
            },
            "Seq": {
                "description": "Every event up to this seq is in the answer or this "
                "process's copies (a write's own events included): the `minSeq` for a "
                "read from another process",
                "schema": {"type": "string", "pattern": "^[0-9]+$"},
            },
        },
    }


DESCRIPTION = f"""\
The HTTP API of inftd, the indexer and agent daemon of the INFT platform.

**Errors** are always `{{"error": {{"code": "...", "message": "..."}}}}` with a stable
`code`. Every response carries an `X-Request-Id` (the client's own if it sends a plain one).

**Credentials** go in `Authorization: Bearer <value>`: a sign-in token from
`POST /v1/auth/login` (Sign-In with Ethereum), or the operator API key. Owner routes decide
on each request from the agent's current owner.

**Rate limits**: per client IP and per signed-in address; beyond them, 429 `rate_limited`
with `Retry-After`. `/health`, `/metrics` and the operator are not limited.

**Bodies** larger than the server's limit get 413 `request_entity_too_large`.

**Live agents**: reads of agents, balances and generations answer from the process's copy
of the agent, kept true by the event log (a process reads its own writes at once; other
processes' within moments). They carry an `ETag` (an agent's is its version, the seq of its
last event); `If-None-Match` with it answers 304 with no body. Every answer carries
`X-Inftd-Seq`; a read from another process with `?minSeq=<that seq>` waits (briefly, then
answers what it has) until it holds every event up to it.

**CORS**: preflights (`OPTIONS` with `Access-Control-Request-Method`) from the configured
origins get 204; from other origins 403 `origin_not_allowed`.

**WebSockets** (`/v1/agents/{{token_id}}/ws`, `/v1/ws`) answer 101 and then speak JSON,
described by the AsyncAPI document at `/asyncapi.json`: the server sends a snapshot, missed
events with `?since=<seq>`, live events and the answers to commands; the client sends
commands of at most {MAX_CLIENT_MESSAGE} bytes. A client that falls behind is closed with
code {CLOSE_TOO_SLOW}.
"""


def security_schemes() -> dict[str, Any]:
    return {
        "signIn": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "inftd sign-in token",
            "description": "A token from POST /v1/auth/login; owner routes need the owner's",
        },
        "operatorKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "INFTD_OPERATOR_API_KEY: acts for any owner, opens the firehose",
        },
        "accessToken": {
            "type": "apiKey",
            "in": "query",
            "name": "access_token",
            "description": "WebSockets only: a sign-in token or the operator key (browsers "
            "cannot set headers on a WebSocket)",
        },
        "webhookSignature": {
            "type": "apiKey",
            "in": "header",
            "name": SIGNATURE_HEADER,
            "description": 'sha256=<hex HMAC-SHA256(INFTD_WEBHOOK_SECRET, "<timestamp>." + '
            "raw body)>; each signed request is accepted once",
        },
        "webhookTimestamp": {
            "type": "apiKey",
            "in": "header",
            "name": TIMESTAMP_HEADER,
            "description": f"Unix seconds, within {REPLAY_WINDOW} s of the server's clock",
        },
    }


PUSHED: tuple[Any, ...] = (AgentEvent,)  # the models of the pushes (described with the routes')


def push_webhooks(described: Callable[[Any], Schema]) -> dict[str, Any]:
    """The document's ``webhooks``: what inftd POSTs to an owner's webhook URL;
    ``described`` gives the schema of a model of ``PUSHED``."""

    def header(name: str, description: str) -> dict[str, Any]:
        return {"name": name, "in": "header", "required": True, "schema": STRING,
                "description": description}  # fmt: skip

    return {
        "agentEvent": {
            "post": {
                "summary": "One event of the agent, pushed to a webhook it subscribed",
                "description": "Signed the Standard Webhooks way: verify with any of its "
                "libraries and the subscription's secret. A redirect is never followed. "
                "Deprecated, sent for one more release: `X-Inftd-Timestamp` and "
                "`X-Inftd-Signature` (sha256=HEX(HMAC_SHA256(secret, timestamp.body))).",
                "parameters": [
                    header("webhook-id", "The delivery: the same on every retry"),
                    header("webhook-timestamp", "Unix seconds of this attempt"),
                    header("webhook-signature", "v1,BASE64(HMAC_SHA256(key, id.timestamp.body))"),
                    header("X-Inftd-Event", "The event type, as in the body's `event`"),
                    header("X-Inftd-Delivery", "The delivery id, as in `webhook-id`"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": described(AgentEvent)}},
                },
                "responses": {
                    "2XX": {"description": "Delivered"},
                    "default": {
                        "description": "Anything else, a redirect included: retried with "
                        "backoff, then a dead letter"
                    },
                },
            }
        }
    }
