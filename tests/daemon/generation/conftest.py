"""A migrated database (SQLite file and PostgreSQL) for the generation tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.store import migrate
from inftd.store.db import create_async


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    migrate.upgrade(database_url)
    engine = create_async(database_url)
    yield engine
    await engine.dispose()
