"""Exceptions of the runtime.

DaemonError
 ├── ConfigError   a setting is missing or invalid (the message names the key)
 ├── DeployError   deploying the contracts failed
 └── DevnetError   the local Anvil chain could not be started or found
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
