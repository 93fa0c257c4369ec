"""The one table from domain errors to HTTP answers: a status and a stable code.

Handlers let domain errors rise; the error middleware (``http.error_middleware``) answers
each with the status and code of its nearest class here and its message (which names the
problem, never a secret). A handler catches a domain error itself only where the same
error means different things on different routes (an unknown peer is a grantee on one,
a recipient on another).
"""

from __future__ import annotations

from collections.abc import Mapping

from inftd.agents.errors import (
    BadCreditRequest,
    BadFeedback,
    BadMemory,
    BadMessage,
    BadPreferences,
    BadWindow,
    FeedbackExists,
    GenerationNotSucceeded,
    InsufficientCredits,
    LimitExceeded,
    NotOwner,
    OverCommit,
    OverRefund,
    SelfCollaboration,
    SelfMessage,
    UnknownAgent,
    UnknownCollaboration,
    UnknownGeneration,
    UnknownMessage,
    UnknownReservation,
    UnpricedGeneration,
)
from inftd.daemon.auth.signatures import SignatureUnverifiable
from inftd.daemon.errors import EmbeddingError
from inftd.daemon.events.push import PushTargetError
from inftd.daemon.generation.errors import (
    BadGenerationRequest,
    IdempotencyConflict,
    NoCollaboration,
    NotCancellable,
)
from inftd.daemon.relayer.statesync import StateSyncError
from inftd.indexer.rpc import RpcError

DOMAIN_ERRORS: Mapping[type[Exception], tuple[int, str]] = {
    UnknownAgent: (404, "unknown_agent"),
    NotOwner: (403, "not_owner"),  # sold since the request was let in (agents.writer)
    BadPreferences: (400, "bad_preferences"),
    BadMemory: (400, "bad_memory"),
    BadMessage: (400, "bad_message"),
    SelfMessage: (400, "self_message"),  # a BadMessage with its own code
    UnknownMessage: (404, "unknown_message"),
    SelfCollaboration: (400, "self_collaboration"),
    UnknownCollaboration: (404, "unknown_collaboration"),
    BadWindow: (400, "bad_window"),
    InsufficientCredits: (409, "insufficient_credits"),
    UnknownReservation: (409, "unknown_reservation"),
    OverCommit: (409, "over_commit"),
    OverRefund: (409, "over_refund"),
    BadCreditRequest: (400, "bad_request"),
    UnpricedGeneration: (400, "unpriced_generation"),
    UnknownGeneration: (404, "unknown_generation"),
    GenerationNotSucceeded: (409, "generation_not_succeeded"),
    FeedbackExists: (409, "feedback_exists"),
    BadFeedback: (400, "bad_feedback"),
    BadGenerationRequest: (400, "bad_request"),
    IdempotencyConflict: (409, "idempotency_conflict"),
    NoCollaboration: (403, "no_collaboration"),
    NotCancellable: (409, "not_cancellable"),
    EmbeddingError: (502, "embedding_failed"),  # names the provider, never the key
    PushTargetError: (400, "bad_url"),
    StateSyncError: (502, "state_sync_failed"),
    SignatureUnverifiable: (503, "chain_unavailable"),
    RpcError: (503, "chain_unavailable"),  # the node does not answer, or refuses a call
}


def answer_for(exc: Exception) -> tuple[int, str] | None:
    """The status and code of ``exc``'s nearest class in the table, if any."""
    if isinstance(exc, LimitExceeded):  # a prompt too long waits in vain; other limits pass
        return (400 if exc.limit_name == "max_prompt_chars" else 429), "limit_exceeded"
    for kind in type(exc).__mro__:
        found = DOMAIN_ERRORS.get(kind)
        if found is not None:
            return found
    return None
