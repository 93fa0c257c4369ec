"""What is left of the API server's own section: the token id parameter, which the
sections not yet declared at their handlers name (every route of the server itself is)."""

from __future__ import annotations

from typing import Any

from inftd.daemon.server.api.agents import MAX_TOKEN_DIGITS
from inftd.daemon.server.openapi.section import Section


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
    }


def section() -> Section:
    """The token id parameter."""
    return Section(tags={}, paths={}, parameters=_parameters())
