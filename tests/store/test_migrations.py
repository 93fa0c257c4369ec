from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from inftd.store import migrate
from inftd.store.db import create_sync_engine
from inftd.store.models import Base


def table_names(url: str) -> set[str]:
    engine = create_sync_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_then_downgrade_then_upgrade(database_url: str) -> None:
    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == migrate.head_revision()
    assert set(Base.metadata.tables) <= table_names(database_url)

    migrate.downgrade(database_url, "base")
    assert migrate.current_revision(database_url) is None
    assert table_names(database_url) == {"alembic_version"}

    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == migrate.head_revision()


def test_models_match_migrations(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = create_sync_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], f"models and migrations differ; write a revision: {diff}"


def test_upgrade_is_idempotent(database_url: str) -> None:
    migrate.upgrade(database_url)
    migrate.upgrade(database_url)
    assert migrate.current_revision(database_url) == migrate.head_revision()


def test_database_refuses_negative_available_credits(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = create_sync_engine(database_url)
    insert = text(
        "INSERT INTO agents (token_id, package_type, owner, total_credits, used_credits, "
        "reserved_credits, level, agent_metadata, preferences, collection_influences, "
        "purchase_price_wei, created_block, owner_since_block, version, created_at, "
        "last_activity) VALUES (:id, 0, '0x0', 10, :used, :reserved, 1, '{}', '{}', '[]', "
        "0, 1, 1, 1, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    try:
        with engine.begin() as conn:
            conn.execute(insert, {"id": 1, "used": 4, "reserved": 6})  # available 0: allowed
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"id": 2, "used": 5, "reserved": 6})  # available -1
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM agents")).scalar_one() == 1
    finally:
        engine.dispose()


def test_upgrading_keeps_existing_rows(database_url: str) -> None:
    """SQLite rebuilds tables to alter them; that must never cascade into other tables."""
    migrate.upgrade(database_url, "0001")
    engine = create_sync_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO agents (token_id, package_type, owner, total_credits, "
                    "used_credits, reserved_credits, level, agent_metadata, preferences, "
                    "collection_influences, purchase_price_wei, created_block, "
                    "owner_since_block, version, created_at, last_activity) VALUES "
                    "(7, 0, '0x0', 10, 0, 0, 1, '{}', '{}', '[]', 0, 1, 1, 1, "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO credit_entries (token_id, kind, amount, idempotency_key, "
                    "created_at) VALUES (7, 'grant', 10, 'k1', CURRENT_TIMESTAMP)"
                )
            )
        migrate.upgrade(database_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM agents")).scalar_one() == 1
            assert conn.execute(text("SELECT count(*) FROM credit_entries")).scalar_one() == 1
    finally:
        engine.dispose()


def test_daemon_processes_revision_goes_up_and_down(database_url: str) -> None:
    """0009 adds the heartbeat table alone; going back to 0008 removes it and nothing else."""
    migrate.upgrade(database_url, "0008")
    before = table_names(database_url)
    migrate.upgrade(database_url, "0009")
    assert table_names(database_url) == before | {"daemon_processes"}
    engine = create_sync_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO daemon_processes (id, host, pid, roles, version, "
                    "heartbeat_interval, facts, started_at, heartbeat_at) VALUES ('h:1:a', 'h', "
                    "1, '[\"api\"]', '0', 5, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
    finally:
        engine.dispose()
    migrate.downgrade(database_url, "0008")
    assert table_names(database_url) == before
    migrate.upgrade(database_url, "0009")
    assert "daemon_processes" in table_names(database_url)
