"""The API's OpenAPI 3.1 description, served at ``GET /openapi.json``.

The document is built in code rather than committed as JSON: the limits and names it
states (body size, preference limits, webhook headers and window, the version) come from
the modules that enforce them, so it cannot drift from them, and it is type-checked and
linted like the rest. ``tests/daemon/test_openapi.py`` keeps it true: every route the app
serves is documented (and nothing else), and real and generated requests get answers
whose status and body the document allows.

Path parameters are named as the router names them (``token_id``, ``webhook_id``).
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

import inftd
from inftd.agents import preferences
from inftd.daemon.api.agents import MAX_TOKEN_DIGITS
from inftd.daemon.api.push import DEAD_LETTERS_PAGE, MAX_EVENT_TYPES, MAX_SUBSCRIPTIONS
from inftd.daemon.api.ws import CLOSE_TOO_SLOW, MAX_CLIENT_MESSAGE
from inftd.daemon.push import MAX_URL
from inftd.indexer.webhook import (
    LOG_FIELDS,
    MAX_LOGS,
    REPLAY_WINDOW,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
)

Schema = dict[str, Any]

PATH = "/openapi.json"
OPENAPI = web.AppKey("openapi", bytes)  # the document, serialized once at start

# Owner routes: the agent's current owner (sign-in token) or the operator (API key).
OWNER: list[dict[str, list[str]]] = [{"signIn": []}, {"operatorKey": []}]
ADDRESS = "^0x[0-9a-fA-F]{40}$"
HEX = "^0x[0-9a-fA-F]*$"
INT = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
STRING = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}
BAD_BODY = ("malformed_json", "bad_request")  # read_json, then a body of the wrong shape
NOT_FOUND = ("unknown_agent", "unknown_webhook")


def _ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _null(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Schema], *optional: str) -> Schema:
    """A closed object: every property required unless named in ``optional``."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }


def _counts(description: str) -> Schema:
    return {"type": "object", "additionalProperties": COUNT, "description": description}


def _answer(description: str, schema: Schema | None = None, media: str = "application/json") -> Any:
    response: dict[str, Any] = {
        "description": description,
        "headers": {"X-Request-Id": _ref("RequestId", "headers")},
    }
    if schema is not None:
        response["content"] = {media: {"schema": schema}}
    return response


def _error(description: str, *codes: str) -> Any:
    """An error answer whose ``error.code`` is one of ``codes``."""
    narrowed = {"properties": {"error": {"properties": {"code": {"enum": list(codes)}}}}}
    return _answer(description, {"allOf": [_ref("Error"), narrowed]})


def _operation(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Any],
    *,
    limited: bool = True,
    **fields: Any,
) -> Any:
    """An operation; every one may fail with 500, and all but the exempt ones with 429."""
    answers = dict(responses)
    if limited:
        answers["429"] = _ref("RateLimited", "responses")
    answers["500"] = _ref("InternalError", "responses")
    return {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        **fields,
        "responses": dict(sorted(answers.items())),
    }


def _json_body(schema: Schema, description: str) -> Any:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": schema}},
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

**CORS**: preflights (`OPTIONS` with `Access-Control-Request-Method`) from the configured
origins get 204; from other origins 403 `origin_not_allowed`.

**WebSockets** (`/v1/agents/{{token_id}}/ws`, `/v1/ws`) answer 101 and then speak JSON:
the server sends `WsServerMessage`s (a snapshot, missed events with `?since=<seq>`, live
events), the client sends `WsCommand`s of at most {MAX_CLIENT_MESSAGE} bytes. A client that
falls behind is closed with code {CLOSE_TOO_SLOW}.
"""


def _paths_meta() -> dict[str, Any]:
    return {
        "/health": {
            "get": _operation(
                "health",
                "meta",
                "Liveness: the process and its database",
                {
                    "200": _answer("Up", _ref("Health")),
                    "503": _answer("The database does not answer", _ref("Health")),
                },
                limited=False,
            )
        },
        "/v1/status": {
            "get": _operation(
                "status",
                "meta",
                "Chain, indexer, deployment and database status",
                {"200": _answer("The status", _ref("Status"))},
            )
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "meta",
                "Prometheus metrics: HTTP requests and latency by route, the indexer's figures",
                {"200": _answer("Prometheus text exposition", STRING, "text/plain")},
                limited=False,
            )
        },
        PATH: {
            "get": _operation(
                "openapi",
                "meta",
                "This document",
                {"200": _answer("The OpenAPI 3.1 document", _ref("OpenApiDocument"))},
            )
        },
    }


def _paths_agents() -> dict[str, Any]:
    token = [_ref("TokenId", "parameters")]
    return {
        "/v1/agents/{token_id}": {
            "get": _operation(
                "getAgent",
                "agents",
                "The agent of a package token",
                {
                    "200": _answer("The agent", _ref("Agent")),
                    "400": _error("The token id is not a uint256 in decimal", "bad_token_id"),
                    "404": _ref("UnknownAgent", "responses"),
                },
                parameters=token,
            )
        },
        "/v1/agents/{token_id}/preferences": {
            "put": _operation(
                "putPreferences",
                "agents",
                "Replace the agent's preferences (owner or operator)",
                {
                    "200": _answer("The new preferences", _ref("PreferencesUpdated")),
                    "400": _error(
                        "Bad token id, body not JSON, or preferences of another shape",
                        "bad_token_id",
                        "malformed_json",
                        "bad_preferences",
                    ),
                    "401": _ref("Unauthorized", "responses"),
                    "403": _ref("NotOwner", "responses"),
                    "404": _ref("UnknownAgent", "responses"),
                    "413": _ref("BodyTooLarge", "responses"),
                },
                parameters=token,
                security=OWNER,
                requestBody=_json_body(_ref("Preferences"), "The agent's new preferences"),
            )
        },
    }


def _paths_auth() -> dict[str, Any]:
    login_refusals = (
        "malformed_message",
        "wrong_domain",
        "wrong_chain",
        "message_expired",
        "message_not_yet_valid",
        "bad_signature",
        "unknown_nonce",
        "nonce_used",
        "nonce_expired",
    )
    return {
        "/v1/auth/nonce": {
            "get": _operation(
                "getNonce",
                "auth",
                "A single-use nonce and the Sign-In with Ethereum (EIP-4361) message to sign",
                {
                    "200": _answer("The nonce and the message", _ref("Nonce")),
                    "400": _error("Not an Ethereum address", "bad_address"),
                },
                parameters=[_ref("Address", "parameters")],
            )
        },
        "/v1/auth/login": {
            "post": _operation(
                "login",
                "auth",
                "Trade a signed sign-in message for a bearer token",
                {
                    "200": _answer("Signed in", _ref("Login")),
                    "400": _error("Body not JSON, or not the two strings", *BAD_BODY),
                    "401": _error("The sign-in is refused", *login_refusals),
                    "413": _ref("BodyTooLarge", "responses"),
                },
                requestBody=_json_body(_ref("LoginRequest"), "The message and its signature"),
            )
        },
    }


def _paths_chain_webhook() -> dict[str, Any]:
    return {
        "/v1/webhooks/chain": {
            "post": _operation(
                "chainWebhook",
                "webhooks",
                "Contract logs pushed by a notifier, each verified against the chain",
                {
                    "200": _answer("Every log accepted, duplicate or ignored", _ref("ChainIngest")),
                    "400": _error(
                        "Body not JSON, not {logs: [...]}, or a log the chain cannot look up",
                        "malformed_json",
                        "malformed",
                    ),
                    "401": _error(
                        f"Unsigned, bad signature, or timestamp outside {REPLAY_WINDOW} s",
                        "unsigned",
                        "stale",
                        "bad_signature",
                    ),
                    "409": _error("This signed request was received already", "replayed"),
                    "413": _error(
                        f"Body too large, or more than {MAX_LOGS} logs",
                        "request_entity_too_large",
                        "too_many_logs",
                    ),
                    "422": _answer(
                        "A log failed verification: nothing of the request is stored",
                        _ref("ChainIngestRejected"),
                    ),
                    "503": _error(
                        "No webhook secret is set, or the chain does not answer",
                        "webhook_disabled",
                        "chain_unavailable",
                    ),
                },
                security=[{"webhookSignature": [], "webhookTimestamp": []}],
                requestBody=_json_body(_ref("ChainLogs"), "Logs exactly as eth_getLogs gives them"),
            )
        },
    }


def _paths_owner_webhooks() -> dict[str, Any]:
    base = "/v1/agents/{token_id}/webhooks"
    token = [_ref("TokenId", "parameters")]
    owner = {
        "401": _ref("Unauthorized", "responses"),
        "403": _ref("NotOwner", "responses"),
        "404": _ref("UnknownAgent", "responses"),
    }
    bad_token = {"400": _error("The token id is not a uint256 in decimal", "bad_token_id")}
    return {
        base: {
            "post": _operation(
                "createWebhook",
                "webhooks",
                "Subscribe a URL to the agent's events (owner or operator)",
                {
                    "201": _answer(
                        "Subscribed; the secret is shown this once", _ref("WebhookCreated")
                    ),
                    "400": _error(
                        "Bad token id, body, URL or event types",
                        "bad_token_id",
                        *BAD_BODY,
                        "bad_url",
                        "bad_events",
                    ),
                    **owner,
                    "409": _error(
                        f"The agent has {MAX_SUBSCRIPTIONS} webhooks", "too_many_webhooks"
                    ),
                    "413": _ref("BodyTooLarge", "responses"),
                },
                parameters=token,
                security=OWNER,
                requestBody=_json_body(_ref("WebhookRequest"), "Where to send which events"),
            ),
            "get": _operation(
                "listWebhooks",
                "webhooks",
                "The agent's webhooks (owner or operator)",
                {"200": _answer("The webhooks", _ref("WebhookList")), **bad_token, **owner},
                parameters=token,
                security=OWNER,
            ),
        },
        base + "/dead-letters": {
            "get": _operation(
                "deadLetters",
                "webhooks",
                f"The newest {DEAD_LETTERS_PAGE} deliveries that exhausted their retries",
                {"200": _answer("The dead letters", _ref("DeadLetters")), **bad_token, **owner},
                parameters=token,
                security=OWNER,
            )
        },
        base + "/{webhook_id}": {
            "delete": _operation(
                "deleteWebhook",
                "webhooks",
                "Remove a webhook (owner or operator)",
                {
                    "204": _answer("Removed"),
                    **bad_token,
                    **owner,
                    "404": _error("No such agent, or no such webhook for it", *NOT_FOUND),
                },
                parameters=[*token, _ref("WebhookId", "parameters")],
                security=OWNER,
            )
        },
    }


def _paths_websockets() -> dict[str, Any]:
    opened = _answer("Switching Protocols: the WebSocket is open (see WsServerMessage)")
    opened["x-websocket"] = {"server": _ref("WsServerMessage"), "client": _ref("WsCommand")}
    no_upgrade = "bad_request"  # aiohttp's answer to a GET without a WebSocket handshake
    return {
        "/v1/agents/{token_id}/ws": {
            "get": _operation(
                "agentSocket",
                "websockets",
                "WebSocket of one agent's events (more by command); private ones to its owner",
                {
                    "101": opened,
                    "400": _error(
                        "Bad token id or since, or not a WebSocket handshake",
                        "bad_token_id",
                        "bad_since",
                        no_upgrade,
                    ),
                    "401": _error(
                        "A credential that is not valid", "invalid_token", "token_expired"
                    ),
                    "404": _ref("UnknownAgent", "responses"),
                },
                parameters=[_ref("TokenId", "parameters"), _ref("Since", "parameters")],
                security=[{}, {"signIn": []}, {"operatorKey": []}, {"accessToken": []}],
            )
        },
        "/v1/ws": {
            "get": _operation(
                "firehose",
                "websockets",
                "WebSocket of every event (operator)",
                {
                    "101": opened,
                    "400": _error(
                        "Bad since, or not a WebSocket handshake", "bad_since", no_upgrade
                    ),
                    "401": _error(
                        "Not the operator", "unauthenticated", "invalid_token", "token_expired"
                    ),
                },
                parameters=[_ref("Since", "parameters")],
                security=[{"operatorKey": []}, {"accessToken": []}],
            )
        },
    }


def _parameters() -> dict[str, Any]:
    return {
        "TokenId": {
            "name": "token_id",
            "in": "path",
            "required": True,
            "description": "The package token id, a uint256 in decimal",
            "schema": {
                "type": "string",
                "pattern": f"^[0-9]{{1,{MAX_TOKEN_DIGITS}}}$",
                "examples": ["1", "2", "0"],
            },
        },
        "WebhookId": {
            "name": "webhook_id",
            "in": "path",
            "required": True,
            "description": "The webhook's id (a UUID), as created",
            "schema": {"type": "string", "format": "uuid", "minLength": 1},
        },
        "Since": {
            "name": "since",
            "in": "query",
            "required": False,
            "description": "Replay the events after this seq before the live ones",
            "schema": {"type": "string", "pattern": "^[0-9]{1,18}$", "examples": ["0"]},
        },
        "Address": {
            "name": "address",
            "in": "query",
            "required": True,
            "description": "The Ethereum address to sign in as (lower case or EIP-55)",
            "schema": {
                "type": "string",
                "pattern": ADDRESS,
                "examples": ["0x70997970C51812dc3A010C7d01b50e0d17dc79C8"],
            },
        },
    }


def _responses() -> dict[str, Any]:
    rate_limited = _error("Too many requests from this IP or address", "rate_limited")
    rate_limited["headers"]["Retry-After"] = {
        "description": "Seconds until a request may succeed",
        "schema": {"type": "integer", "minimum": 1},
    }
    return {
        "RateLimited": rate_limited,
        "InternalError": _error(
            "An unexpected failure (logged with the request id)", "internal_error"
        ),
        "BodyTooLarge": _error(
            "The body is larger than the server accepts", "request_entity_too_large"
        ),
        "Unauthorized": _error(
            "No credentials, or ones that are not valid",
            "unauthenticated",
            "invalid_token",
            "token_expired",
        ),
        "NotOwner": _error("Signed in, but not as the agent's current owner", "not_owner"),
        "UnknownAgent": _error("No agent for that token id", "unknown_agent"),
    }


def _security_schemes() -> dict[str, Any]:
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


def _schemas_common() -> dict[str, Schema]:
    return {
        "Error": _object({"error": _ref("ErrorDetail")}),
        "ErrorDetail": _object({"code": STRING, "message": STRING}),
        "Health": _object(
            {
                "status": {"enum": ["ok", "unavailable"]},
                "database": {"enum": ["ok", "unavailable"]},
            }
        ),
        "OpenApiDocument": {
            "type": "object",
            "required": ["openapi", "info", "paths", "components"],
            "properties": {"openapi": {"const": "3.1.0"}},
        },
        "Status": _object(
            {
                "version": STRING,
                "uptimeSeconds": {"type": "number", "minimum": 0},
                "chain": _object(
                    {"chainId": INT, "ok": {"type": "boolean"}, "headBlock": _null(COUNT)}
                ),
                "indexer": _ref("IndexerStatus"),
                "deployment": _ref("Deployment"),
                "database": _object(
                    {
                        "backend": {"enum": ["sqlite", "postgresql"]},
                        "revision": _null(STRING),
                        "headRevision": _null(STRING),
                    }
                ),
            }
        ),
        "IndexerStatus": _object(
            {
                "headBlock": _null(COUNT),
                "indexedBlock": _null(COUNT),
                "confirmedBlock": _null(INT),
                "lagBlocks": _null(INT),
                "reorgs": COUNT,
                "deepestReorg": COUNT,
                "pendingEvents": COUNT,
                "projectionProblems": COUNT,
                "eventsByKind": _counts("Applied chain events by event name"),
                "halted": _null(STRING),
                "webhook": _counts("Webhook logs by outcome, and requests refused"),
            }
        ),
        "Deployment": _object(
            {
                "chainId": INT,
                "packageAddress": {"type": "string", "pattern": ADDRESS},
                "generationAddress": {"type": "string", "pattern": ADDRESS},
                "deployBlock": COUNT,
                "deployBlockHash": {"type": "string", "pattern": HEX},
                "abiVersion": STRING,
                "deployer": {"type": "string", "pattern": ADDRESS},
                "minter": {"type": "string", "pattern": ADDRESS},
                "operator": {"type": "string", "pattern": ADDRESS},
            }
        ),
    }


def _schemas_agents() -> dict[str, Schema]:
    no_nul = "^[^\\u0000]*$"  # PostgreSQL cannot store NUL; refused on every database
    value = {"type": ["string", "number", "boolean"], "pattern": no_nul}
    return {
        "Agent": _object(
            {
                "packageTokenId": COUNT,
                "packageType": COUNT,
                "owner": {"type": "string", "pattern": ADDRESS},
                "totalCredits": COUNT,
                "usedCredits": COUNT,
                "reservedCredits": COUNT,
                "availableCredits": COUNT,
                "level": INT,
                "agentMetadata": {"type": "string", "description": "The metadata URI, or ''"},
                "agentStateHash": _null(STRING),
                "learningData": {"type": "array", "items": _ref("LearningEntry")},
                "collectionInfluences": {"type": "array", "items": STRING},
                "generatedContent": {"type": "array", "items": _ref("GeneratedContent")},
                "lastActivity": _null(TIME),
                "preferences": {"type": "object", "additionalProperties": value},
            }
        ),
        "LearningEntry": _object(
            {
                "generationId": _null(STRING),
                "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                "tags": {"type": "array", "items": STRING},
                "note": _null(STRING),
                "createdAt": _null(TIME),
            }
        ),
        "GeneratedContent": _object(
            {
                "id": STRING,
                "kind": STRING,
                "prompt": STRING,
                "contentUri": _null(STRING),
                "contentHash": _null(STRING),
                "provider": _null(STRING),
                "createdAt": _null(TIME),
            }
        ),
        "Preferences": {
            "type": "object",
            "description": f"At most {preferences.MAX_BYTES} bytes as compact JSON",
            "maxProperties": preferences.MAX_KEYS,
            "propertyNames": {
                "minLength": 1,
                "maxLength": preferences.MAX_KEY_CHARS,
                "pattern": no_nul,
            },
            "additionalProperties": value,
        },
        "PreferencesUpdated": _object(
            {"packageTokenId": COUNT, "preferences": _ref("Preferences")}
        ),
    }


def _schemas_auth() -> dict[str, Schema]:
    return {
        "Nonce": _object(
            {
                "nonce": STRING,
                "message": {"type": "string", "description": "EIP-4361 text to sign unchanged"},
                "expiresAt": TIME,
            }
        ),
        "LoginRequest": {
            "type": "object",
            "required": ["message", "signature"],
            "properties": {
                "message": {"type": "string", "description": "The message, as received"},
                "signature": {"type": "string", "pattern": "^0x[0-9a-fA-F]{130}$"},
            },
        },
        "Login": _object(
            {"token": STRING, "address": {"type": "string", "pattern": ADDRESS}, "expiresAt": TIME}
        ),
    }


def _schemas_chain_webhook() -> dict[str, Schema]:
    quantity = {"type": "string", "pattern": HEX}
    log_fields: dict[str, Schema] = {
        "address": {"type": "string", "pattern": ADDRESS},
        "topics": {"type": "array", "items": quantity, "maxItems": 4},
        "data": quantity,
        "blockNumber": quantity,
        "blockHash": quantity,
        "transactionHash": quantity,
        "logIndex": quantity,
    }
    outcome = _object(
        {
            "transactionHash": STRING,
            "logIndex": STRING,
            "status": {"enum": ["accepted", "duplicate", "ignored", "rejected", "held"]},
            "reason": STRING,
        },
        "reason",
    )
    rejected = {"properties": {"code": {"const": "rejected_logs"}}}
    tally: dict[str, Schema] = {
        "results": {"type": "array", "items": outcome},
        **{name: COUNT for name in ("accepted", "duplicate", "ignored", "rejected")},
    }
    return {
        "ChainLogs": {
            "type": "object",
            "required": ["logs"],
            "properties": {
                "logs": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_LOGS,
                    "items": {
                        "type": "object",
                        "required": list(LOG_FIELDS),
                        "properties": {name: log_fields[name] for name in LOG_FIELDS},
                    },
                }
            },
        },
        "ChainIngest": _object(tally),
        "ChainIngestRejected": _object(
            {"error": {"allOf": [_ref("ErrorDetail"), rejected]}, **tally},
        ),
    }


def _schemas_owner_webhooks() -> dict[str, Schema]:
    webhook: dict[str, Schema] = {
        "id": {"type": "string", "format": "uuid"},
        "url": {"type": "string", "format": "uri"},
        "events": {"type": "array", "items": STRING, "description": "Empty: every event"},
        "active": {"type": "boolean"},
        "createdAt": _null(TIME),
    }
    return {
        "WebhookRequest": {
            "type": "object",
            "required": ["url"],
            "properties": {
                "url": {
                    "type": "string",
                    "format": "uri",
                    "maxLength": MAX_URL,
                    "description": "http(s), printable, no credentials; a public address "
                    "unless the server allows private targets",
                    "examples": ["https://example.com/hook", "http://127.0.0.1:9/hook"],
                },
                "events": {
                    "type": "array",
                    "maxItems": MAX_EVENT_TYPES,
                    "items": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 64,
                        "description": "Printable characters",
                    },
                    "description": "Event types to send; none or empty: every event",
                },
            },
        },
        "Webhook": _object(webhook),
        "WebhookCreated": _object({**webhook, "secret": STRING}),
        "WebhookList": _object({"webhooks": {"type": "array", "items": _ref("Webhook")}}),
        "DeadLetters": _object({"deadLetters": {"type": "array", "items": _ref("DeadLetter")}}),
        "DeadLetter": _object(
            {
                "deliveryId": INT,
                "webhookId": STRING,
                "url": STRING,
                "seq": INT,
                "event": STRING,
                "data": {"type": "object"},
                "attempts": COUNT,
                "lastStatus": _null(INT),
                "lastError": _null(STRING),
                "createdAt": _null(TIME),
            }
        ),
    }


def _schemas_websockets() -> dict[str, Schema]:
    def message(kind: str, **fields: Schema) -> Schema:
        return _object({"type": {"const": kind}, **fields})

    token = _null(COUNT)
    return {
        "WsServerMessage": {
            "oneOf": [
                message("snapshot", tokenId=COUNT, seq=COUNT, agent=_ref("Agent")),
                message(
                    "event",
                    seq=COUNT,
                    event=STRING,
                    tokenId=token,
                    data={"type": "object"},
                    at=_null(TIME),
                ),
                message("error", code=STRING, message=STRING),
                message("pong", seq=COUNT),
                message("unsubscribed", tokenId=token),
            ]
        },
        "WsCommand": {
            "oneOf": [
                message("subscribe", tokenId=COUNT),
                message("unsubscribe", tokenId=COUNT),
                message("ping"),
            ]
        },
    }


def openapi_document(max_body_bytes: int) -> dict[str, Any]:
    """The whole document; ``max_body_bytes`` is the server's body limit (413 beyond)."""
    responses = _responses()
    responses["BodyTooLarge"]["description"] = f"The body is larger than {max_body_bytes} bytes"
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "inftd",
            "version": inftd.__version__,
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "tags": [
            {"name": name, "description": text}
            for name, text in (
                ("meta", "Health, status, metrics and this document"),
                ("agents", "The agents of package tokens"),
                ("auth", "Sign-In with Ethereum"),
                ("webhooks", "Chain logs in, agents' events out"),
                ("websockets", "Live events"),
            )
        ],
        "paths": {
            **_paths_meta(),
            **_paths_agents(),
            **_paths_auth(),
            **_paths_chain_webhook(),
            **_paths_owner_webhooks(),
            **_paths_websockets(),
        },
        "components": {
            "schemas": {
                **_schemas_common(),
                **_schemas_agents(),
                **_schemas_auth(),
                **_schemas_chain_webhook(),
                **_schemas_owner_webhooks(),
                **_schemas_websockets(),
            },
            "parameters": _parameters(),
            "responses": responses,
            "headers": {
                "RequestId": {
                    "description": "The request's id, also in the server's log lines",
                    "schema": {"type": "string"},
                }
            },
            "securitySchemes": _security_schemes(),
        },
    }


async def openapi_endpoint(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


def add_routes(app: web.Application, max_body_bytes: int) -> None:
    app[OPENAPI] = orjson.dumps(openapi_document(max_body_bytes))
    app.router.add_get(PATH, openapi_endpoint)
