"""SQL that differs between SQLite and PostgreSQL, behind one small function each."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def insert_ignore(conn: AsyncConnection, table: Table) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING: how idempotent writes are made here. Built once
    per dialect and table; execute it with the row as parameters (``.values`` builds anew)."""
    return _insert_ignore(conn.dialect.name == "postgresql", table)


@functools.cache
def _insert_ignore(postgres: bool, table: Table) -> Any:
    dialect = postgresql if postgres else sqlite
    return dialect.insert(table).on_conflict_do_nothing()
