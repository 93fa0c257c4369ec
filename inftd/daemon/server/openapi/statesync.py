"""State sync: an agent's state hash put on chain on request (``api.statesync``)."""

from __future__ import annotations

from typing import Any

from inftd.daemon.server.api.statesync import PATH
from inftd.daemon.server.openapi.parts import (
    COUNT,
    OWNER,
    STRING,
    Schema,
    answer,
    error,
    nullable,
    obj,
    operation,
    ref,
)
from inftd.daemon.server.openapi.section import Section

TAG = "state-sync"
HASH = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}


def _paths() -> dict[str, Any]:
    answers = {
        "202": answer(
            "The snapshot is stored; its hash was sent, is on chain already, or waits for "
            "the key's pending transaction (outcome)",
            ref("StateSynced"),
        ),
        "400": error("The token id is not a uint256 in decimal", "bad_token_id"),
        "401": ref("Unauthorized", "responses"),
        "403": ref("NotOwner", "responses"),
        "404": error("No such agent", "unknown_agent"),
        "409": error(
            "State sync is off on this daemon (relayer.state_sync, INFTD_OPERATOR_KEY)",
            "state_sync_off",
        ),
        "502": error("The contract or the node refused the transaction", "state_sync_failed"),
        "503": error(
            "The chain did not answer, or the database was busy",
            "chain_unavailable",
            "busy",
        ),
    }
    return {
        PATH: {
            "post": operation(
                "syncAgentState",
                TAG,
                "Write the hash of the agent's state snapshot on chain with setAgentMetadata "
                "(owner or operator); the snapshot is served at the returned URI",
                answers,
                parameters=[ref("TokenId", "parameters")],
                security=OWNER,
            )
        }
    }


def _schemas() -> dict[str, Schema]:
    return {
        "StateSynced": obj(
            {
                "packageTokenId": COUNT,
                "stateHash": {**HASH, "description": "keccak256 of the snapshot's bytes"},
                "uri": {**STRING, "description": "Serves the snapshot (canonical JSON)"},
                "outcome": {"enum": ["sent", "unchanged", "in_flight"]},
                "txHash": nullable(HASH),
            }
        )
    }


def section() -> Section:
    return Section(
        tags={
            TAG: "Agent state on chain: a canonical snapshot's keccak256 published with "
            "setAgentMetadata, the snapshot served at its URI"
        },
        paths=_paths(),
        schemas=_schemas(),
    )
