"""Exceptions of the agent domain.

AgentError
 ├── UnknownAgent   no agent exists for the token id
 └── BadPreferences preferences that are not a small flat JSON object
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every agent error."""


class UnknownAgent(AgentError):
    def __init__(self, token_id: int) -> None:
        self.token_id = token_id
        super().__init__(f"no agent for package token {token_id}")


class BadPreferences(AgentError):
    """The preferences are refused; the message says why."""
