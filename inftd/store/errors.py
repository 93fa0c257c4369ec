"""Exceptions of the storage layer.

StoreError
 ├── DatabaseUrlError    the URL names no supported database
 └── ChainMismatchError  the database belongs to another chain or deployment
"""

from __future__ import annotations


class StoreError(Exception):
    """Base of every storage error."""


class DatabaseUrlError(StoreError):
    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"unsupported database URL scheme in {url.split(':', 1)[0]!r}: "
            "use sqlite:///PATH or postgresql://..."
        )


class ChainMismatchError(StoreError):
    def __init__(self, stored: str, actual: str) -> None:
        self.stored = stored
        self.actual = actual
        super().__init__(f"database belongs to {stored}, but the chain serves {actual}")
