"""The routes of the API server itself: meta, agents, auth."""

from __future__ import annotations

from typing import Any

from inftd.agents import preferences
from inftd.daemon.server.api.agents import LIST_PAGE, MAX_LIST_PAGE, MAX_TOKEN_DIGITS
from inftd.daemon.server.openapi import learning
from inftd.daemon.server.openapi.parts import (
    ADDRESS,
    BAD_BODY,
    COUNT,
    HEX,
    INT,
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
            "patch": learning.patch_preferences(),
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


def section() -> Section:
    """Meta, agents and auth: the routes of the API server itself."""
    return Section(
        tags={
            "meta": "Health, status, metrics and this document",
            "agents": "The agents of package tokens",
            "auth": "Sign-In with Ethereum",
        },
        paths={
            **_paths_meta(),
            **_paths_agents(),
            **_paths_auth(),
        },
        schemas={
            **_schemas_common(),
            **_schemas_agents(),
            **_schemas_auth(),
        },
        parameters=_parameters(),
    )
