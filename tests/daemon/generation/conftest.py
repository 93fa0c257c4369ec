"""A migrated database (SQLite file and PostgreSQL) for the generation tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from inftd.store.db import create_async
from tests.support.schema import at_head


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    at_head(database_url)
    engine = create_async(database_url)
    yield engine
    await engine.dispose()
