"""Refusals of the generation queue (the API turns each into a 4xx; nothing was written).

GenerationError (DaemonError)
 ├── BadGenerationRequest  a body of the wrong shape; the message names the field
 ├── IdempotencyConflict   an Idempotency-Key used before with another request
 ├── NoCollaboration       the collaborator has not granted this agent its influences
 └── NotCancellable        the generation is finished already

A job that cannot be done is ``types.GenerationFailed`` (the strategies raise it).
"""

from __future__ import annotations

from inftd.daemon.errors import DaemonError


class GenerationError(DaemonError):
    """Base of the queue's refusals."""


class BadGenerationRequest(GenerationError):
    """The request is refused; the message says which field and why."""


class IdempotencyConflict(GenerationError):
    def __init__(self, token_id: int, generation_id: str) -> None:
        self.token_id = token_id
        self.generation_id = generation_id
        super().__init__(
            f"this Idempotency-Key was used for another request to package token {token_id} "
            f"(generation {generation_id}); use a new key for a new request"
        )


class NoCollaboration(GenerationError):
    def __init__(self, granter: int, grantee: int) -> None:
        self.granter = granter
        self.grantee = grantee
        super().__init__(f"agent {granter} has not granted collaboration to agent {grantee}")


class NotCancellable(GenerationError):
    def __init__(self, generation_id: str, status: str) -> None:
        self.generation_id = generation_id
        self.status = status
        super().__init__(f"generation {generation_id} is {status}; only queued or running ones")
