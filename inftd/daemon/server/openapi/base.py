"""The routes of the API server itself still described by hand: webhooks, WebSockets, and
the PATCH of the preferences (the meta, agents and auth routes are declared at their
handlers)."""

from __future__ import annotations

from typing import Any

from inftd.daemon.events.push import MAX_URL
from inftd.daemon.server.api.agents import MAX_TOKEN_DIGITS
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
from inftd.indexer.webhook import (
    LOG_FIELDS,
    MAX_LOGS,
    REPLAY_WINDOW,
)


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
    """Webhooks and WebSockets: routes of the API server itself."""
    return Section(
        tags={
            "webhooks": "Chain logs in, agents' events out",
            "websockets": "Live events",
        },
        paths={
            **_paths_chain_webhook(),
            **_paths_owner_webhooks(),
            **_paths_websockets(),
        },
        schemas={
            **_schemas_chain_webhook(),
            **_schemas_owner_webhooks(),
            **_schemas_websockets(),
        },
        parameters=_parameters(),
    )
