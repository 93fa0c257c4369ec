"""Alembic, driven from code so ``inftd migrate`` works from any directory."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from inftd.store.db import create_sync_engine
from inftd.store.errors import StoreError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Alembic's config is an .ini parser: escape % so URLs with %-encoding survive.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


@functools.cache  # the migration files do not change under a running process
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(database_url: str) -> str | None:
    engine = create_sync_engine(database_url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


async def revision_of(conn: AsyncConnection) -> str | None:
    return await conn.run_sync(
        lambda sync_conn: MigrationContext.configure(sync_conn).get_current_revision()
    )


async def require_head(engine: AsyncEngine) -> str:
    """The database's revision, which must be the latest: the daemon never runs on an old schema."""
    async with engine.connect() as conn:
        current, head = await revision_of(conn), head_revision()
    if current is None or current != head:
        raise StoreError(
            f"database is at revision {current or 'none'}, expected {head}: run `inftd migrate`"
        )
    return current
