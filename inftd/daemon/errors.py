"""Exceptions of the runtime.

DaemonError
 ├── ConfigError   a setting is missing or invalid (the message names the key)
 ├── DeployError   deploying the contracts failed
 ├── DevnetError   the local Anvil chain could not be started or found
 ├── EmbeddingError  an embedding provider refused or failed (never names the key)
 └── defined where they are raised:
      AuthError (auth), PushTargetError (push), ProviderError (providers.base),
      GenerationError and GenerationFailed (generation), RelayerHalted and
      StateSyncError (relayer)
"""

from __future__ import annotations


class DaemonError(Exception):
    """Base of every runtime error."""


class ConfigError(DaemonError):
    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config {key}: {problem}")


class DeployError(DaemonError):
    pass


class DevnetError(DaemonError):
    pass


class EmbeddingError(DaemonError):
    """An embedding provider failed; ``status`` is its HTTP status (None: no answer)."""

    def __init__(self, provider: str, status: int | None, problem: str) -> None:
        self.provider = provider
        self.status = status
        self.problem = problem
        where = f"HTTP {status}" if status is not None else "no answer"
        super().__init__(f"{provider} embeddings failed ({where}): {problem}")
