"""Storage: engines, typed models and Alembic migrations (SQLite default, PostgreSQL at scale)."""

from inftd.store.errors import ChainMismatchError, StoreError

__all__ = ["ChainMismatchError", "StoreError"]
