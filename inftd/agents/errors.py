"""Exceptions of the agent domain.

AgentError
 ├── UnknownAgent   no agent exists for the token id
 │    └── UnknownPeer   the other agent of a message or grant does not exist
 ├── NotOwner       the agent's owner changed since the request was let in as its owner
 ├── BadMessage     a message of another shape or size (SelfMessage: to its own agent)
 ├── TooManyMessages  a sender past its messages per minute
 ├── UnknownMessage  no such message for the agent
 ├── SelfCollaboration  an agent granting itself
 ├── UnknownCollaboration  no active grant between the two agents
 ├── BadWindow      an analytics window that is not a bounded time range
 ├── BadPreferences preferences that are not a small flat JSON object
 ├── BadMemory      a memory or memory query refused (empty, too long, bad importance, ...)
 ├── CreditsError   a credits operation refused; nothing changed
 │    ├── InsufficientCredits  fewer credits available than needed
 │    ├── UnknownReservation   commit or release of a reservation never made
 │    ├── OverCommit           committing more than the reservation holds
 │    ├── OverRefund           refunding more than was spent
 │    └── BadCreditRequest     an amount or idempotency key of the wrong shape
 ├── LimitExceeded  a usage limit of the package type (named) would be exceeded
 ├── UnpricedGeneration  a generation kind/quality the package type has no price for
 ├── UnknownGeneration  no generation with that id
 ├── FeedbackRefused  feedback that cannot apply to the generation
 │    ├── GenerationNotSucceeded  the generation has not succeeded (nothing to rate)
 │    └── FeedbackExists          the generation has its feedback already
 └── BadFeedback    a rating, tags or note of the wrong shape
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every agent error."""


class UnknownAgent(AgentError):
    def __init__(self, token_id: int) -> None:
        self.token_id = token_id
        super().__init__(f"no agent for package token {token_id}")


class NotOwner(AgentError):
    def __init__(self, token_id: int, admitted: str, owner: str) -> None:
        self.token_id = token_id
        self.admitted = admitted
        self.owner = owner
        super().__init__(f"package token {token_id} is no longer owned by {admitted}")


class BadPreferences(AgentError):
    """The preferences are refused; the message says why."""


class UnknownPeer(UnknownAgent):
    """The other agent of a message (``role`` "recipient") or a grant ("grantee")."""

    def __init__(self, token_id: int, role: str) -> None:
        super().__init__(token_id)
        self.role = role


class BadMessage(AgentError):
    """The message is refused; the message says why."""


class SelfMessage(BadMessage):
    def __init__(self, token_id: int) -> None:
        self.token_id = token_id
        super().__init__(f"agent {token_id} cannot send a message to itself")


class TooManyMessages(AgentError):
    def __init__(self, token_id: int, limit: int, retry_after: float) -> None:
        self.token_id = token_id
        self.limit = limit
        self.retry_after = retry_after  # seconds until the oldest counted message ages out
        super().__init__(
            f"agent {token_id} sent {limit} messages in the last minute, the most allowed "
            f"(MESSAGES_PER_MINUTE); retry in {retry_after:.0f} s"
        )


class UnknownMessage(AgentError):
    def __init__(self, token_id: int, message_id: int) -> None:
        self.token_id = token_id
        self.message_id = message_id
        super().__init__(f"agent {token_id} received no message {message_id}")


class SelfCollaboration(AgentError):
    def __init__(self, token_id: int) -> None:
        self.token_id = token_id
        super().__init__(f"agent {token_id} cannot grant collaboration to itself")


class UnknownCollaboration(AgentError):
    def __init__(self, granter: int, grantee: int) -> None:
        self.granter = granter
        self.grantee = grantee
        super().__init__(f"agent {granter} has no active grant to agent {grantee}")


class BadWindow(AgentError):
    """The analytics window is refused; the message says why."""


class BadMemory(AgentError):
    """A memory (or a query of memories) is refused; the message says why."""


class CreditsError(AgentError):
    """A credits operation is refused; nothing was written."""


class InsufficientCredits(CreditsError):
    def __init__(self, token_id: int, needed: int, available: int) -> None:
        self.token_id = token_id
        self.needed = needed
        self.available = available
        super().__init__(
            f"package token {token_id} needs {needed} credits, has {available} available"
        )


class UnknownReservation(CreditsError):
    def __init__(self, token_id: int, key: str) -> None:
        self.token_id = token_id
        self.key = key
        super().__init__(f"package token {token_id} has no reservation {key!r:.140}")


class OverCommit(CreditsError):
    def __init__(self, token_id: int, key: str, used: int, reserved: int) -> None:
        self.token_id = token_id
        self.key = key
        self.used = used
        self.reserved = reserved
        super().__init__(
            f"cannot commit {used} credits of reservation {key!r:.140} of package token "
            f"{token_id}: it holds {reserved}"
        )


class OverRefund(CreditsError):
    def __init__(self, token_id: int, amount: int, refundable: int) -> None:
        self.token_id = token_id
        self.amount = amount
        self.refundable = refundable
        super().__init__(
            f"cannot refund {amount} credits to package token {token_id}: "
            f"{refundable} spent may be refunded"
        )


class BadCreditRequest(CreditsError):
    """An amount or idempotency key of the wrong shape; the message says which."""


class LimitExceeded(AgentError):
    def __init__(self, limit_name: str, limit: int, value: int) -> None:
        self.limit_name = limit_name
        self.limit = limit
        self.value = value  # what the request would bring it to
        super().__init__(f"usage limit {limit_name} is {limit}; this request would make it {value}")


class UnpricedGeneration(AgentError):
    def __init__(self, kind: str, quality: str) -> None:
        self.kind = kind
        self.quality = quality
        super().__init__(f"no price for a {kind!r:.40} generation of quality {quality!r:.40}")


class UnknownGeneration(AgentError):
    def __init__(self, generation_id: str) -> None:
        self.generation_id = generation_id
        super().__init__(f"no generation {generation_id!r:.60}")


class FeedbackRefused(AgentError):
    """Feedback that cannot apply to this generation; nothing was written."""


class GenerationNotSucceeded(FeedbackRefused):
    def __init__(self, generation_id: str, status: str) -> None:
        self.generation_id = generation_id
        self.status = status
        super().__init__(f"generation {generation_id} is {status}; only succeeded ones are rated")


class FeedbackExists(FeedbackRefused):
    def __init__(self, generation_id: str) -> None:
        self.generation_id = generation_id
        super().__init__(f"generation {generation_id} has feedback already (once per generation)")


class BadFeedback(AgentError):
    """The feedback is refused; the message says why."""
