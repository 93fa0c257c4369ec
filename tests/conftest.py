"""Real services for the tests: one Anvil per session, SQLite files, and PostgreSQL when
INFTD_TEST_POSTGRES_URL is set (under CI a missing PostgreSQL fails instead of skipping)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from inftd.daemon.cli.devnet import Anvil, rpc_call
from inftd.indexer.deployment import Deployment
from inftd.store.db import sqlite_url
from tests.support.contracts import deploy_dev

POSTGRES_ENV = "INFTD_TEST_POSTGRES_URL"
CREDIT_PRICE_WEI = 10**14


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    with Anvil() as chain:
        yield chain


@pytest.fixture(scope="session")
def deployment(anvil: Anvil) -> Deployment:
    return deploy_dev(anvil.url)


@pytest.fixture
def chain(anvil: Anvil, deployment: Deployment) -> Iterator[Anvil]:
    """The session chain with the contracts deployed; each test's changes are reverted."""
    snapshot = rpc_call(anvil.url, "evm_snapshot")
    yield anvil
    assert rpc_call(anvil.url, "evm_revert", [snapshot]) is True


def _postgres_admin_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{POSTGRES_ENV} is not set: CI must test PostgreSQL")
        pytest.skip(
            f"PostgreSQL tests need {POSTGRES_ENV} (e.g. postgresql://postgres@127.0.0.1/test)"
        )
    return url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    admin = _postgres_admin_url()
    name = f"inftd_test_{uuid.uuid4().hex[:12]}"
    dsn = make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_ENV} is unreachable: {exc}")
    yield make_url(dsn).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a SQLite file and on PostgreSQL."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "inftd.db")
    return request.getfixturevalue("postgres_url")
