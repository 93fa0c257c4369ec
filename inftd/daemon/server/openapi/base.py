"""The routes of the API server itself: meta, agents, auth, webhooks, WebSockets."""

from __future__ import annotations

from typing import Any

from inftd.agents import preferences
from inftd.daemon.events.push import MAX_URL
from inftd.daemon.server.api.agents import LIST_PAGE, MAX_LIST_PAGE, MAX_TOKEN_DIGITS
from inftd.daemon.server.api.push import DEAD_LETTERS_PAGE, MAX_EVENT_TYPES, MAX_SUBSCRIPTIONS
from inftd.daemon.server.openapi.parts import (
    ADDRESS,
    BAD_BODY,
    COUNT,
    HEX,
    INT,
    NOT_FOUND,
    OWNER,
    STRING,
    TIME,
    VERSIONED_READ,
    Schema,
    answer,
    counts,
    error,
    json_body,
    nullable,
    obj,
    operation,
    ref,
    versioned,
)
from inftd.daemon.server.openapi.section import Section
from inftd.indexer.webhook import (
    LOG_FIELDS,
    MAX_LOGS,
    REPLAY_WINDOW,
)

PATH = "/openapi.json"


def _paths_meta() -> dict[str, Any]:
    return {
        "/health": {
            "get": operation(
                "health",
                "meta",
                "Liveness: the process and its database",
                {
                    "200": answer("Up", ref("Health")),
                    "503": answer("The database does not answer", ref("Health")),
                },
                limited=False,
            )
        },
        "/v1/status": {
            "get": operation(
                "status",
                "meta",
                "Chain, indexer, deployment and database status; the processes, their "
                "roles and heartbeats, what is unhealthy; this process's generation worker "
                "and its providers' health",
                {"200": answer("The status", ref("Status"))},
            )
        },
        "/v1/packages": {
            "get": operation(
                "packages",
                "meta",
                "The package types on sale and the price of a credit (what a wallet pays)",
                {"200": answer("The packages", ref("Packages"))},
            )
        },
        "/metrics": {
            "get": operation(
                "metrics",
                "meta",
                "Prometheus metrics: HTTP requests and latency by route, the indexer's figures",
                {"200": answer("Prometheus text exposition", STRING, "text/plain")},
                limited=False,
            )
        },
        PATH: {
            "get": operation(
                "openapi",
                "meta",
                "This document",
                {"200": answer("The OpenAPI 3.1 document", ref("OpenApiDocument"))},
            )
        },
    }


def _paths_agents() -> dict[str, Any]:
    token = [ref("TokenId", "parameters")]
    decimal = {"type": "string", "pattern": f"^[0-9]{{1,{MAX_TOKEN_DIGITS}}}$"}
    page = [
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": f"Agents per page, 1 to {MAX_LIST_PAGE} (default {LIST_PAGE})",
            "schema": {**decimal, "examples": ["1", str(LIST_PAGE)]},
        },
        {
            "name": "after",
            "in": "query",
            "required": False,
            "description": "Start after this token id: the `next` of the previous page",
            "schema": {**decimal, "examples": ["0", "1"]},
        },
    ]
    return {
        "/v1/agents": {
            "get": operation(
                "listAgents",
                "agents",
                "A page of agent summaries, in token id order",
                {
                    **versioned("The page", ref("AgentList"), '"h<hash of the page>"'),
                    "400": error(
                        "limit, after or minSeq is not a fitting integer",
                        "bad_limit",
                        "bad_after",
                        "bad_min_seq",
                    ),
                },
                parameters=page + VERSIONED_READ,
            )
        },
        "/v1/agents/{token_id}": {
            "get": operation(
                "getAgent",
                "agents",
                "The agent of a package token",
                {
                    **versioned("The agent", ref("Agent"), '"<version: its last event seq>"'),
                    "400": error(
                        "The token id or minSeq is not an integer in decimal",
                        "bad_token_id",
                        "bad_min_seq",
                    ),
                    "404": ref("UnknownAgent", "responses"),
                },
                parameters=token + VERSIONED_READ,
            )
        },
        "/v1/agents/{token_id}/preferences": {
            "put": operation(
                "putPreferences",
                "agents",
                "Replace the agent's preferences (owner or operator)",
                {
                    "200": answer("The new preferences", ref("PreferencesUpdated")),
                    "400": error(
                        "Bad token id, body not JSON, or preferences of another shape",
                        "bad_token_id",
                        "malformed_json",
                        "bad_preferences",
                    ),
                    "401": ref("Unauthorized", "responses"),
                    "403": ref("NotOwner", "responses"),
                    "404": ref("UnknownAgent", "responses"),
                    "413": ref("BodyTooLarge", "responses"),
                },
                parameters=token,
                security=OWNER,
                requestBody=json_body(ref("Preferences"), "The agent's new preferences"),
            ),
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
            "get": operation(
                "getNonce",
                "auth",
                "A single-use nonce and the Sign-In with Ethereum (EIP-4361) message to sign",
                {
                    "200": answer("The nonce and the message", ref("Nonce")),
                    "400": error("Not an Ethereum address", "bad_address"),
                },
                parameters=[ref("Address", "parameters")],
            )
        },
        "/v1/auth/login": {
            "post": operation(
                "login",
                "auth",
                "Trade a signed sign-in message for a bearer token",
                {
                    "200": answer("Signed in", ref("Login")),
                    "400": error("Body not JSON, or not the two strings", *BAD_BODY),
                    "401": error("The sign-in is refused", *login_refusals),
                    "413": ref("BodyTooLarge", "responses"),
                    "503": error(
                        "Busy, or the chain does not answer to check a smart wallet's signature",
                        "busy",
                        "chain_unavailable",
                    ),
                },
                requestBody=json_body(
                    ref("LoginRequest"),
                    "The message and its signature: a key's (personal_sign), or a smart "
                    "wallet's (EIP-1271; EIP-6492 for an account not deployed yet), checked "
                    "on chain",
                ),
            )
        },
    }


def _paths_chain_webhook() -> dict[str, Any]:
    return {
        "/v1/webhooks/chain": {
            "post": operation(
                "chainWebhook",
                "webhooks",
                "Contract logs pushed by a notifier, each verified against the chain",
                {
                    "200": answer("Every log accepted, duplicate or ignored", ref("ChainIngest")),
                    "400": error(
                        "Body not JSON, not {logs: [...]}, or a log the chain cannot look up",
                        "malformed_json",
                        "malformed",
                    ),
                    "401": error(
                        f"Unsigned, bad signature, or timestamp outside {REPLAY_WINDOW} s",
                        "unsigned",
                        "stale",
                        "bad_signature",
                    ),
                    "409": error("This signed request was received already", "replayed"),
                    "413": error(
                        f"Body too large, or more than {MAX_LOGS} logs",
                        "request_entity_too_large",
                        "too_many_logs",
                    ),
                    "422": answer(
                        "A log failed verification: nothing of the request is stored",
                        ref("ChainIngestRejected"),
                    ),
                    "503": error(
                        "No webhook secret is set, or the chain does not answer",
                        "webhook_disabled",
                        "chain_unavailable",
                    ),
                },
                security=[{"webhookSignature": [], "webhookTimestamp": []}],
                requestBody=json_body(ref("ChainLogs"), "Logs exactly as eth_getLogs gives them"),
            )
        },
    }


def _paths_owner_webhooks() -> dict[str, Any]:
    base = "/v1/agents/{token_id}/webhooks"
    token = [ref("TokenId", "parameters")]
    owner = {
        "401": ref("Unauthorized", "responses"),
        "403": ref("NotOwner", "responses"),
        "404": ref("UnknownAgent", "responses"),
    }
    bad_token = {"400": error("The token id is not a uint256 in decimal", "bad_token_id")}
    return {
        base: {
            "post": operation(
                "createWebhook",
                "webhooks",
                "Subscribe a URL to the agent's events (owner or operator)",
                {
                    "201": answer(
                        "Subscribed; the secret is shown this once", ref("WebhookCreated")
                    ),
                    "400": error(
                        "Bad token id, body, URL or event types",
                        "bad_token_id",
                        *BAD_BODY,
                        "bad_url",
                        "bad_events",
                    ),
                    **owner,
                    "409": error(
                        f"The agent has {MAX_SUBSCRIPTIONS} webhooks", "too_many_webhooks"
                    ),
                    "413": ref("BodyTooLarge", "responses"),
                },
                parameters=token,
                security=OWNER,
                requestBody=json_body(ref("WebhookRequest"), "Where to send which events"),
            ),
            "get": operation(
                "listWebhooks",
                "webhooks",
                "The agent's webhooks (owner or operator)",
                {"200": answer("The webhooks", ref("WebhookList")), **bad_token, **owner},
                parameters=token,
                security=OWNER,
            ),
        },
        base + "/dead-letters": {
            "get": operation(
                "deadLetters",
                "webhooks",
                f"The newest {DEAD_LETTERS_PAGE} deliveries that exhausted their retries",
                {"200": answer("The dead letters", ref("DeadLetters")), **bad_token, **owner},
                parameters=token,
                security=OWNER,
            )
        },
        base + "/{webhook_id}": {
            "delete": operation(
                "deleteWebhook",
                "webhooks",
                "Remove a webhook (owner or operator)",
                {
                    "204": answer("Removed"),
                    **bad_token,
                    **owner,
                    "404": error("No such agent, or no such webhook for it", *NOT_FOUND),
                },
                parameters=[*token, ref("WebhookId", "parameters")],
                security=OWNER,
            )
        },
    }


def _paths_websockets() -> dict[str, Any]:
    opened = answer("Switching Protocols: the WebSocket is open (see WsServerMessage)")
    opened["x-websocket"] = {"server": ref("WsServerMessage"), "client": ref("WsCommand")}
    no_upgrade = "bad_request"  # aiohttp's answer to a GET without a WebSocket handshake
    return {
        "/v1/agents/{token_id}/ws": {
            "get": operation(
                "agentSocket",
                "websockets",
                "WebSocket of one agent's events (more by command); private ones to its owner",
                {
                    "101": opened,
                    "400": error(
                        "Bad token id or since, or not a WebSocket handshake",
                        "bad_token_id",
                        "bad_since",
                        no_upgrade,
                    ),
                    "401": error(
                        "A credential that is not valid", "invalid_token", "token_expired"
                    ),
                    "404": ref("UnknownAgent", "responses"),
                },
                parameters=[ref("TokenId", "parameters"), ref("Since", "parameters")],
                security=[{}, {"signIn": []}, {"operatorKey": []}, {"accessToken": []}],
            )
        },
        "/v1/ws": {
            "get": operation(
                "firehose",
                "websockets",
                "WebSocket of every event (operator)",
                {
                    "101": opened,
                    "400": error(
                        "Bad since, or not a WebSocket handshake", "bad_since", no_upgrade
                    ),
                    "401": error(
                        "Not the operator", "unauthenticated", "invalid_token", "token_expired"
                    ),
                },
                parameters=[ref("Since", "parameters")],
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


def _schemas_common() -> dict[str, Schema]:
    return {
        "Health": obj(
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
        "Status": obj(
            {
                "version": STRING,
                "uptimeSeconds": {"type": "number", "minimum": 0},
                "chain": obj(
                    {"chainId": INT, "ok": {"type": "boolean"}, "headBlock": nullable(COUNT)}
                ),
                "indexer": ref("IndexerStatus"),
                "deployment": ref("Deployment"),
                "database": obj(
                    {
                        "backend": {"enum": ["sqlite", "postgresql"]},
                        "revision": nullable(STRING),
                        "headRevision": nullable(STRING),
                    }
                ),
                "process": ref("ThisProcess"),
                "processes": {"type": "array", "items": ref("DaemonProcess")},
                "roles": ref("Roles"),
                "problems": {
                    "type": "array",
                    "items": STRING,
                    "description": "what is unhealthy: no live indexer leader, jobs queued "
                    "and no live worker... (empty when healthy)",
                },
                "generation": nullable(
                    obj({"worker": STRING, "running": COUNT, "concurrency": COUNT})
                ),
                "providers": nullable(
                    {
                        "type": "object",
                        "additionalProperties": ref("ProviderStatus"),
                        "description": "This process's providers by name; null when it "
                        "runs no generation worker. The health is this process's view.",
                    }
                ),
                "live": ref("LiveStatus"),
            }
        ),
        "Packages": obj(
            {
                "packages": {
                    "type": "array",
                    "items": obj(
                        {
                            "packageType": COUNT,
                            "name": STRING,
                            "priceWei": {"type": "string", "pattern": "^[0-9]+$"},
                            "credits": COUNT,
                            "active": {"type": "boolean"},
                        }
                    ),
                },
                "creditPriceWei": {"type": "string", "pattern": "^[0-9]+$"},
            }
        ),
        "LiveStatus": obj(
            {
                "tracking": {
                    "type": "boolean",
                    "description": "The hub tails the event log, so copies are kept (else "
                    "every read goes to the database)",
                },
                "agents": COUNT,
                "pages": COUNT,
                "bytes": COUNT,
                "budgetBytes": COUNT,
                "position": COUNT,
                "hits": COUNT,
                "misses": COUNT,
                "hitRate": nullable({"type": "number", "minimum": 0, "maximum": 1}),
                "reads": COUNT,
                "evictions": COUNT,
                "dropped": COUNT,
                "advanced": COUNT,
            }
        ),
        "ProviderStatus": obj(
            {
                "healthy": {"type": "boolean", "description": "May be called now"},
                "coolingUntil": nullable({"type": "string", "format": "date-time"}),
                "errorRate": {"type": "number", "minimum": 0, "maximum": 1},
                "recentCalls": COUNT,
                "latencyMs": {
                    "type": "object",
                    "additionalProperties": {"type": "number", "minimum": 0},
                    "description": "Moving average of answered calls, by capability",
                },
                "failsInARow": COUNT,
                "inFlight": COUNT,
                "probe": nullable(
                    obj(
                        {
                            "ok": {"type": "boolean"},
                            "latencyMs": {"type": "number", "minimum": 0},
                            "error": STRING,
                            "checkedAt": {"type": "string", "format": "date-time"},
                        },
                        "latencyMs",
                        "error",
                    )
                ),
            }
        ),
        "IndexerStatus": obj(
            {
                "headBlock": nullable(COUNT),
                "indexedBlock": nullable(COUNT),
                "confirmedBlock": nullable(INT),
                "lagBlocks": nullable(INT),
                "reorgs": COUNT,
                "deepestReorg": COUNT,
                "pendingEvents": COUNT,
                "projectionProblems": COUNT,
                "eventsByKind": counts("Applied chain events by event name"),
                "halted": nullable(STRING),
                "failing": nullable(STRING),
                "webhook": counts("Webhook logs by outcome, and requests refused"),
            }
        ),
        "Deployment": obj(
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
        "AgentList": obj(
            {
                "agents": {"type": "array", "items": ref("AgentSummary")},
                "next": nullable(COUNT),
            }
        ),
        "AgentSummary": obj(
            {
                "packageTokenId": COUNT,
                "packageType": COUNT,
                "owner": {"type": "string", "pattern": ADDRESS},
                "availableCredits": COUNT,
                "level": INT,
                "lastActivity": nullable(TIME),
            }
        ),
        "Agent": obj(
            {
                "packageTokenId": COUNT,
                "packageType": COUNT,
                "owner": {"type": "string", "pattern": ADDRESS},
                "totalCredits": COUNT,
                "usedCredits": COUNT,
                "reservedCredits": COUNT,
                "availableCredits": COUNT,
                "level": INT,
                "experience": COUNT,
                "agentMetadata": {"type": "string", "description": "The metadata URI, or ''"},
                "agentStateHash": nullable(STRING),
                "learningData": {"type": "array", "items": ref("LearningEntry")},
                "collectionInfluences": {"type": "array", "items": STRING},
                "generatedContent": {"type": "array", "items": ref("GeneratedContent")},
                "lastActivity": nullable(TIME),
                "preferences": {"type": "object", "additionalProperties": value},
            }
        ),
        "LearningEntry": obj(
            {
                "generationId": nullable(STRING),
                "rating": {"type": "integer", "minimum": 1, "maximum": 5},
                "tags": {"type": "array", "items": STRING},
                "note": nullable(STRING),
                "createdAt": nullable(TIME),
            }
        ),
        "GeneratedContent": obj(
            {
                "id": STRING,
                "kind": STRING,
                "prompt": STRING,
                "contentUri": nullable(STRING),
                "contentHash": nullable(STRING),
                "provider": nullable(STRING),
                "createdAt": nullable(TIME),
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
        "PreferencesUpdated": obj({"packageTokenId": COUNT, "preferences": ref("Preferences")}),
    }


def _schemas_auth() -> dict[str, Schema]:
    return {
        "Nonce": obj(
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
                "signature": {
                    "type": "string",
                    "pattern": "^0x([0-9a-fA-F]{2}){1,8192}$",
                    "description": "65 bytes for a key; a smart wallet's in its own format",
                },
            },
        },
        "Login": obj(
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
    outcome = obj(
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
        "ChainIngest": obj(tally),
        "ChainIngestRejected": obj(
            {"error": {"allOf": [ref("ErrorDetail"), rejected]}, **tally},
        ),
    }


def _schemas_owner_webhooks() -> dict[str, Schema]:
    webhook: dict[str, Schema] = {
        "id": {"type": "string", "format": "uuid"},
        "url": {"type": "string", "format": "uri"},
        "events": {"type": "array", "items": STRING, "description": "Empty: every event"},
        "active": {"type": "boolean"},
        "createdAt": nullable(TIME),
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
        "Webhook": obj(webhook),
        "WebhookCreated": obj(
            {
                **webhook,
                "secret": {
                    "type": "string",
                    "pattern": "^whsec_[A-Za-z0-9+/]+={0,2}$",
                    "description": "Shown this once: the Standard Webhooks secret that signs "
                    "the pushes (`whsec_` and the key in base64)",
                },
            }
        ),
        "WebhookList": obj({"webhooks": {"type": "array", "items": ref("Webhook")}}),
        "DeadLetters": obj({"deadLetters": {"type": "array", "items": ref("DeadLetter")}}),
        "DeadLetter": obj(
            {
                "deliveryId": INT,
                "webhookId": STRING,
                "url": STRING,
                "seq": INT,
                "event": STRING,
                "data": {"type": "object"},
                "attempts": COUNT,
                "lastStatus": nullable(INT),
                "lastError": nullable(STRING),
                "createdAt": nullable(TIME),
            }
        ),
    }


def _schemas_websockets() -> dict[str, Schema]:
    def message(kind: str, **fields: Schema) -> Schema:
        return obj({"type": {"const": kind}, **fields})

    token = nullable(COUNT)
    return {
        "AgentEvent": message(
            "event",
            seq=COUNT,
            event=STRING,
            tokenId=token,
            data={"type": "object"},
            at=nullable(TIME),
        ),
        "WsServerMessage": {
            "oneOf": [
                message("snapshot", tokenId=COUNT, seq=COUNT, agent=ref("Agent")),
                ref("AgentEvent"),
                message("error", code=STRING, message=STRING),
                message("pong", seq=COUNT),
                message("unsubscribed", tokenId=token),
                ref("WsMessageSent"),  # the answer to a message command (social section)
                ref("WsGenerationQueued"),  # the answer to generate (generations section)
            ]
        },
        "WsCommand": {
            "oneOf": [
                message("subscribe", tokenId=COUNT),
                message("unsubscribe", tokenId=COUNT),
                message("ping"),
                ref("WsMessageCommand"),  # a message to another agent (social section)
                ref("WsGenerateCommand"),  # ask for a generation (generations section)
            ]
        },
    }


def section() -> Section:
    """Meta, agents, auth, webhooks and WebSockets: the routes of the API server itself."""
    return Section(
        tags={
            "meta": "Health, status, metrics and this document",
            "agents": "The agents of package tokens",
            "auth": "Sign-In with Ethereum",
            "webhooks": "Chain logs in, agents' events out",
            "websockets": "Live events",
        },
        paths={
            **_paths_meta(),
            **_paths_agents(),
            **_paths_auth(),
            **_paths_chain_webhook(),
            **_paths_owner_webhooks(),
            **_paths_websockets(),
        },
        schemas={
            **_schemas_common(),
            **_schemas_agents(),
            **_schemas_auth(),
            **_schemas_chain_webhook(),
            **_schemas_owner_webhooks(),
            **_schemas_websockets(),
        },
        parameters=_parameters(),
    )
