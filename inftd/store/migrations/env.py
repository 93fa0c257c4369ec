"""Alembic environment: the URL comes from the config that ``inftd.store.migrate`` builds."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from inftd.store.db import create_sync_engine, is_sqlite
from inftd.store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is not set"
    engine = create_sync_engine(url)
    try:
        with engine.connect() as connection:
            if is_sqlite(url):
                # SQLite alters a table by copying it; with foreign keys on, dropping the old
                # copy would cascade into every referencing table. Outside a transaction only.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()  # end SQLAlchemy's autobegun transaction; Alembic opens its own
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=is_sqlite(url),  # SQLite alters tables by copying them
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
            if is_sqlite(url):
                _check_foreign_keys(connection)
    finally:
        engine.dispose()


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration left dangling foreign keys: {broken[:5]}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
