"""Ingest: contract ABIs, the deployment file, and (later) reading the chain into projections."""

from inftd.indexer.errors import IndexerError

__all__ = ["IndexerError"]
