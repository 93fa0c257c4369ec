"""What is left of the social section: the analytics window's parameters, which the spend
section names. The social and analytics routes are declared at their handlers
(inftd/daemon/server/api/social.py and api/analytics.py)."""

from __future__ import annotations

from typing import Any

from inftd.agents.analytics import DEFAULT_WINDOW, MAX_WINDOW
from inftd.daemon.server.openapi.parts import Schema
from inftd.daemon.server.openapi.section import Section

TIME_FORMS = "unix seconds or ISO 8601 (UTC unless it names an offset)"


def _query(name: str, description: str) -> Schema:
    moment = {"type": "string", "examples": ["1709251200", "2024-03-01T00:00:00Z"]}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": moment,
    }


def _parameters() -> dict[str, Any]:
    return {
        "AnalyticsFrom": _query(
            "from",
            f"Start of the window, {TIME_FORMS}; default: {DEFAULT_WINDOW.days} days before to",
        ),
        "AnalyticsTo": _query(
            "to",
            f"End of the window (excluded), {TIME_FORMS}; default: now. "
            f"At most {MAX_WINDOW.days} days after from",
        ),
    }


def section() -> Section:
    """The analytics window's parameters."""
    return Section(tags={}, paths={}, parameters=_parameters())
