"""``bench.chaos`` for a minute: the daemon killed, the chain reorganised, the RPC and the
providers failing, under a random workload; then every invariant holds. The run must have
done each of those things, so it cannot pass by doing nothing; and the checker must catch
a database that breaks the invariants, so it cannot pass by checking nothing.

The daemons run with CONFIRMATIONS and the reorgs (``anvil_reorg``) stay shallower, the
shape a production chain is configured for: reorgs drop pending events, which must have
granted nothing, and the relayer's transactions. Runs at 0 confirmations (the dev chain's
setting, deeper reorgs) are the README's "Chaos" commands; the reorg tests of tests/indexer
and tests/daemon/relayer (voided mints among them) cover 0 confirmations directly."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from bench.chaos.invariants import Findings
from bench.chaos.run import Options, Report, chaos, verify
from bench.chaos.world import World
from inftd.store.db import sqlite_url

pytestmark = [pytest.mark.timeout(600), pytest.mark.asyncio(loop_scope="module")]

SECONDS = 60.0  # of workload on SQLite
POSTGRES_SECONDS = 25.0
CONFIRMATIONS = 4
MIN_OPERATIONS = 100  # a minute of four workers does several hundred
INVARIANTS = {1, 2, 3, 4, 7}
VIOLATIONS_SHOWN = 20  # in a failure's message, before the daemons' errors


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sqlite_run(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[World, Report]]:
    options = Options(
        seconds=SECONDS,
        seed=7,
        work_dir=tmp_path_factory.mktemp("chaos"),
        confirmations=CONFIRMATIONS,
    )
    async with chaos(options) as (world, report):
        yield world, report


def assert_did_things_and_held(world: World, report: Report) -> None:
    findings = report.findings
    said = [*map(str, findings.violations[:VIOLATIONS_SHOWN]), *daemon_errors(world)]
    assert findings.violations == [], "\n".join(said)
    assert report.settled, "\n".join(daemon_errors(world))
    assert report.strikes.kills >= 1
    assert report.strikes.reorgs >= 1
    assert sum(report.rpc_faults.values()) >= 1
    assert sum(report.strikes.provider.values()) >= 1
    assert report.operations > MIN_OPERATIONS
    assert {"purchase", "generation_api", "generation_chain"} <= set(report.tally.ops)
    assert report.tally.accepted
    assert report.generations["succeeded"] >= 1
    assert report.mints["confirmed"] == report.generations["succeeded"]
    assert set(findings.checks) == INVARIANTS
    assert min(findings.checks.values()) >= 1


async def test_a_minute_of_chaos_on_sqlite_breaks_no_invariant(
    sqlite_run: tuple[World, Report],
) -> None:
    assert_did_things_and_held(*sqlite_run)


def daemon_errors(world: World, lines: int = 40) -> list[str]:
    """What the daemons logged at ERROR (and the tracebacks after) and the indexer's failed
    syncs, for a failure's message: a CI run keeps no work folder to read afterwards."""
    found: list[str] = []
    for daemon in world.daemons.daemons:
        logged = daemon.log.read_text(errors="replace").splitlines() if daemon.log.exists() else []
        for i, line in enumerate(logged):
            if any(mark in line for mark in (" ERROR ", " CRITICAL ", "sync failed")):
                found.extend(f"{daemon.name}: {text}" for text in logged[i : i + 12])
    return found[-lines:] or ["the daemons logged no error"]


def corrupted_copy(database: Path, copy: Path) -> dict[str, str]:
    """A copy of the run's database with four invariants broken; what was done to what."""
    with sqlite3.connect(database) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    with sqlite3.connect(copy) as db:
        agent = db.execute("SELECT min(token_id) FROM agents").fetchone()[0]
        db.execute(
            "UPDATE agents SET total_credits = total_credits + 7 WHERE token_id = ?", (agent,)
        )
        charged = db.execute(
            "SELECT id, token_id, credits_used FROM generations "
            "WHERE status = 'succeeded' AND credits_used > 0 ORDER BY id LIMIT 1"
        ).fetchone()
        db.execute(
            "INSERT INTO credit_entries (token_id, kind, amount, idempotency_key, generation_id, "
            "created_at) VALUES (?, 'commit', 0, 'twice', ?, CURRENT_TIMESTAMP)",
            (charged[1], charged[0]),
        )
        minted = db.execute(
            "SELECT generation_id FROM mints WHERE status = 'confirmed' ORDER BY generation_id"
        ).fetchall()
        db.execute(
            "UPDATE mints SET nft_token_id = nft_token_id + 1000 WHERE generation_id = ?",
            (minted[0][0],),
        )
    return {"credits": f"agent {agent}", "charged": charged[0], "mint": minted[0][0]}


async def test_the_checker_reports_a_corrupted_copy_of_the_database(
    sqlite_run: tuple[World, Report], tmp_path: Path
) -> None:
    world, report = sqlite_run
    copy = tmp_path / "corrupted.db"
    done = corrupted_copy(Path(world.database_url.removeprefix("sqlite:///")), copy)
    accepted = {**report.tally.accepted, "00000000-dead-beef-0000-000000000000": 1}
    findings, _ = await verify(world, sqlite_url(copy), accepted)
    said = "\n".join(map(str, findings.violations))
    assert f"invariant 2: {done['credits']} caches" in said
    assert f"invariant 3: {done['credits']}:" in said
    assert f"invariant 2: generation {done['charged']} committed 2 times" in said
    assert f"invariant 4: generation {done['mint']}: mint row" in said
    assert "invariant 7: accepted generation 00000000-dead-beef-0000-000000000000" in said
    assert_only(findings, {2, 3, 4, 7})


def assert_only(findings: Findings, invariants: set[int]) -> None:
    assert {v.invariant for v in findings.violations} == invariants


@pytest.mark.postgres
async def test_chaos_on_postgresql_breaks_no_invariant(postgres_url: str, tmp_path: Path) -> None:
    options = Options(
        seconds=POSTGRES_SECONDS,
        seed=11,
        database_url=postgres_url,
        work_dir=tmp_path,
        confirmations=CONFIRMATIONS,
    )
    async with chaos(options) as (world, report):
        assert_did_things_and_held(world, report)
