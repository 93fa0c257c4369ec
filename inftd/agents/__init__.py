"""Domain: the per-token agent (state, credits ledger, and later memory, learning, messages)."""

from inftd.agents.errors import AgentError, UnknownAgent

__all__ = ["AgentError", "UnknownAgent"]
