"""Exceptions of the indexer.

IndexerError
 ├── ArtifactError     a contract ABI file is missing or malformed
 └── DeploymentError   the deployment file is missing, malformed, or for another chain
"""

from __future__ import annotations


class IndexerError(Exception):
    """Base of every indexer error."""


class ArtifactError(IndexerError):
    pass


class DeploymentError(IndexerError):
    pass
