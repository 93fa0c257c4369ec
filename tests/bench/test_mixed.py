"""``bench.mixed``: the staleness it reports is the one it defines, and a tiny mixed run
over the real daemon reads, writes, observes every commit and misses no own write."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import api, mixed
from inftd.daemon.cli.devnet import Anvil
from inftd.store.db import sqlite_url


def read(token: int, started: float, version: int, server: int = 0) -> mixed.Read:
    return mixed.Read(server, token, started, 0.001, version, 200)


def test_staleness_is_from_the_commit_to_the_last_stale_read_begun_after_it() -> None:
    events = [
        mixed.Written(seq=5, token=1, kind="credits.changed", inserted=9.0, committed=10.0),
        mixed.Written(seq=6, token=2, kind="credits.changed", inserted=19.0, committed=20.0),
    ]
    reads = [
        read(1, 9.5, 4),  # began before the commit: not stale
        read(1, 10.01, 4),  # stale, 10 ms after
        read(1, 10.02, 5),
        read(1, 10.03, 4),  # stale again: the last one counts, 30 ms
        read(1, 10.04, mixed.NO_VERSION),  # unversioned: a fresh read, never stale
        read(1, 10.05, 4, server=1),  # another server's
        read(2, 20.5, 6),  # fresh at once
    ]
    at_commit = mixed.staleness(reads, events, 0, lambda e: e.committed)
    assert at_commit == pytest.approx([0.03, 0.0])
    at_insert = mixed.staleness(reads, events, 0, lambda e: e.inserted)
    assert at_insert == pytest.approx([1.03, 0.0])
    assert mixed.staleness(reads, events, 1, lambda e: e.committed) == pytest.approx([0.05, 0.0])


def test_a_short_mixed_run_counts_reads_writes_and_commits(
    daemon: api.Server, bench_chain: api.BenchChain, chain: Anvil, tmp_path: Path
) -> None:
    database = sqlite_url(tmp_path / "inftd.db")
    package = bench_chain.deployment.package_address
    run = mixed.run_mixed(
        [daemon], database, chain.url, package, bench_chain.tokens, 4, seconds=2.0
    )
    assert run.reads
    assert run.statuses() == {200: len(run.reads)}
    assert {r.token for r in run.reads} == set(bench_chain.tokens)
    assert set(run.writes.counts) == set(mixed.PACE)
    assert run.writes.own
    assert run.misses() == 0
    assert run.events > 0  # the observer saw the writes' events commit
    assert len(run.stale[0]) == len(run.stale_inserted[0]) == run.events
    # An insert comes before its commit: staleness from it is never the smaller.
    assert all(i >= c for i, c in zip(run.stale_inserted[0], run.stale[0], strict=True))
    results = api.Results(agents=2, targets=[api.Target("SQLite", database, mixed=[run])])
    table = api.render(results, api.parse_args(["--quick"]))
    assert f"| SQLite | 4 | writing | {run.events} |" in table
