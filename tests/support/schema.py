"""Fresh test databases at the latest revision, without running the migrations each time.

The migrations run once per test session and kind, for real (``migrate.upgrade``), into
a SQLite template file and a PostgreSQL template database; each test then gets a copy.
Copying takes milliseconds where migrating took most of a second, over a thousand tests.
``tests/store/test_migrations.py`` still runs every migration up and down on both.
"""

from __future__ import annotations

import atexit
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from inftd.store import migrate
from inftd.store.db import is_sqlite, sqlite_url

_templates: dict[str, str] = {}  # kind -> template (a file path or a database name)


def at_head(url: str) -> None:
    """Bring the fresh, empty database at ``url`` to the head revision."""
    if is_sqlite(url):
        _copy_sqlite(url)
    else:
        _clone_postgres(url)


def _copy_sqlite(url: str) -> None:
    target = Path(make_url(url).database or "")
    if target.exists() and target.stat().st_size > 0:
        migrate.upgrade(url)  # not fresh: only the real thing knows what to do
        return
    if "sqlite" not in _templates:
        folder = Path(tempfile.mkdtemp(prefix="inftd-schema-"))
        template = folder / "template.db"
        migrate.upgrade(sqlite_url(template))
        with sqlite3.connect(template) as conn:  # fold the WAL into the file we copy
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        atexit.register(shutil.rmtree, folder, True)
        _templates["sqlite"] = str(template)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_templates["sqlite"], target)


def _admin_dsn(url: str) -> str:
    """The same server, its maintenance database, for CREATE and DROP DATABASE."""
    parsed = make_url(url).set(drivername="postgresql", database="postgres")
    return parsed.render_as_string(hide_password=False)


def _clone_postgres(url: str) -> None:
    parsed = make_url(url)
    name = parsed.database
    admin = _admin_dsn(url)
    with psycopg.connect(
        parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    ) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
        if tables.fetchone() != (0,):
            migrate.upgrade(url)  # not fresh: only the real thing knows what to do
            return
    with psycopg.connect(admin, autocommit=True) as conn:
        template = _templates.get("postgres") or _postgres_template(url, conn)
        # The test's database is fresh and nobody uses it yet: take a copy in its place.
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


def _postgres_template(url: str, admin: psycopg.Connection[tuple[object, ...]]) -> str:
    name = f"inftd_template_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    migrate.upgrade(make_url(url).set(database=name).render_as_string(hide_password=False))
    # A database is copied only while no session is connected to it.
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
    )
    admin_dsn = _admin_dsn(url)

    def drop() -> None:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    _templates["postgres"] = name
    return name
