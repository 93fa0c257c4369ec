"""An agent's credits: balances, the ledger, adjustments (``inftd.daemon.server.api.credits``)."""

from __future__ import annotations

from typing import Any

from inftd.agents.credits import MAX_AMOUNT, MAX_KEY_CHARS
from inftd.agents.ledger import KINDS
from inftd.daemon.server.api.agents import MAX_TOKEN_DIGITS
from inftd.daemon.server.api.credits import (
    LEDGER_PAGE,
    LEGACY_PATH,
    MAX_ADJUST_NOTE,
    MAX_LEDGER_PAGE,
)
from inftd.daemon.server.openapi.parts import (
    BAD_BODY,
    COUNT,
    INT,
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

CREDITS = "/v1/agents/{token_id}/credits"
TOKEN = ref("TokenId", "parameters")
BALANCES: dict[str, Schema] = {
    "packageTokenId": COUNT,
    "totalCredits": COUNT,
    "usedCredits": COUNT,
    "reservedCredits": COUNT,
    "availableCredits": COUNT,
}
NO_NUL = "^[^\\u0000]*$"


def _paths() -> dict[str, Any]:
    return {
        CREDITS: {
            "get": operation(
                "getCredits",
                "credits",
                "The agent's balances and its ledger, newest first (owner or operator)",
                {
                    "200": answer("Balances and a page of the ledger", ref("CreditsLedgerPage")),
                    "400": error(
                        "Bad token id, limit or cursor", "bad_token_id", "bad_limit", "bad_before"
                    ),
                    "401": ref("Unauthorized", "responses"),
                    "403": ref("NotOwner", "responses"),
                    "404": ref("UnknownAgent", "responses"),
                },
                parameters=[
                    TOKEN,
                    ref("CreditsLimit", "parameters"),
                    ref("CreditsBefore", "parameters"),
                ],
                security=OWNER,
            )
        },
        CREDITS + "/adjust": {
            "post": operation(
                "adjustCredits",
                "credits",
                "Correct the agent's total credits (operator); a key applies once",
                {
                    "200": answer(
                        "Adjusted, or the first result again for a key already applied",
                        ref("CreditsAdjusted"),
                    ),
                    "400": error(
                        "Bad token id, body not JSON or of another shape",
                        "bad_token_id",
                        *BAD_BODY,
                    ),
                    "401": ref("Unauthorized", "responses"),
                    "403": error("Signed in, but not as the operator", "not_operator"),
                    "404": ref("UnknownAgent", "responses"),
                    "409": error(
                        "The total would drop below what is spent and reserved",
                        "insufficient_credits",
                    ),
                    "413": ref("BodyTooLarge", "responses"),
                },
                parameters=[TOKEN],
                security=[{"operatorKey": []}],
                requestBody=json_body(ref("CreditsAdjustRequest"), "The adjustment"),
            )
        },
        LEGACY_PATH: {
            "get": operation(
                "legacyCredits",
                "credits",
                "The seed's credits route: an agent's balances, public",
                {
                    **versioned("The balances", ref("CreditsBalances"), '"<the agent\'s version>"'),
                    "400": error(
                        "No tokenId, or not a uint256 in decimal; minSeq not a seq",
                        "bad_token_id",
                        "bad_min_seq",
                    ),
                    "404": ref("UnknownAgent", "responses"),
                },
                parameters=[ref("CreditsTokenIdQuery", "parameters"), *VERSIONED_READ],
            )
        },
    }


def _query(name: str, description: str, schema: Schema, required: bool = False) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _parameters() -> dict[str, Any]:
    return {
        "CreditsLimit": _query(
            "limit",
            f"Entries per page, 1 to {MAX_LEDGER_PAGE} (default {LEDGER_PAGE})",
            {"type": "string", "pattern": "^[0-9]{1,4}$", "examples": ["1", "50"]},
        ),
        "CreditsBefore": _query(
            "before",
            "Only entries older than this entry id: the previous page's next",
            {"type": "string", "pattern": "^[0-9]{1,20}$", "examples": ["1", "3"]},
        ),
        "CreditsTokenIdQuery": _query(
            "tokenId",
            "The package token id, a uint256 in decimal",
            {
                "type": "string",
                "pattern": f"^[0-9]{{1,{MAX_TOKEN_DIGITS}}}$",
                "examples": ["1", "2", "0"],
            },
            required=True,
        ),
    }


def _schemas() -> dict[str, Schema]:
    amount = {"type": "integer", "minimum": -MAX_AMOUNT, "maximum": MAX_AMOUNT}
    entry = obj(
        {
            "id": COUNT,
            "kind": {"enum": list(KINDS)},
            "amount": {**INT, "description": "Credits; only an adjust may be negative"},
            "generationId": nullable(STRING),
            "note": nullable(STRING),
            "createdAt": nullable(TIME),
        }
    )
    return {
        "CreditsBalances": obj(BALANCES),
        "CreditsLedgerEntry": entry,
        "CreditsLedgerPage": obj(
            {
                **BALANCES,
                "ledger": {"type": "array", "items": ref("CreditsLedgerEntry")},
                "next": {
                    **nullable(COUNT),
                    "description": "The before= of the next page; null on the last",
                },
            }
        ),
        "CreditsAdjustRequest": {
            "type": "object",
            "required": ["amount", "note", "idempotencyKey"],
            "properties": {
                "amount": {**amount, "description": "Credits added (negative: removed); not 0"},
                "note": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_ADJUST_NOTE,
                    "pattern": NO_NUL,
                    "description": "Why; shown in the owner's ledger",
                },
                "idempotencyKey": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_KEY_CHARS,
                    "description": "Printable characters; the same key again applies nothing",
                    "examples": ["ticket-4711"],
                },
            },
        },
        "CreditsAdjusted": obj(
            {
                **BALANCES,
                "entry": ref("CreditsLedgerEntry"),
                "replayed": {"type": "boolean", "description": "The key had been applied"},
            }
        ),
    }


def section() -> Section:
    """Balances, the ledger and operator adjustments."""
    return Section(
        tags={"credits": "An agent's credits and their ledger"},
        paths=_paths(),
        schemas=_schemas(),
        parameters=_parameters(),
    )
