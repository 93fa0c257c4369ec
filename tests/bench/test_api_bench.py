"""``bench.api``'s core on a tiny configuration: it runs, and it counts right (never timed).

The real pieces, small: agents bought on the session chain and indexed into SQLite, the
daemon in its own process, load generators in theirs, WebSocket subscribers in theirs.
"""

from __future__ import annotations

from collections import Counter

import pytest

from bench import api
from inftd.daemon.cli.devnet import Anvil

CONNECTIONS = 5
REQUESTS = 3  # per connection
SUBSCRIBERS = 3
EVENTS = 2


def test_load_and_fan_out_count_every_request_and_receipt(
    daemon: api.Server, bench_chain: api.BenchChain, chain: Anvil
) -> None:
    run = api.run_load(daemon, bench_chain.agent_paths(), CONNECTIONS, REQUESTS, processes=2)
    assert run.statuses == {200: CONNECTIONS * REQUESTS}
    assert run.requests == CONNECTIONS * REQUESTS  # the warm-up requests are not counted
    assert run.connections == CONNECTIONS  # exactly N held, shared by two processes
    api.check_run(run, CONNECTIONS, REQUESTS)

    token = bench_chain.tokens[0]
    before = api.fetch_json(f"{daemon.url}/v1/agents/{token}")["totalCredits"]
    package = bench_chain.deployment.package_address
    fan = api.fan_out(daemon, chain.url, package, token, SUBSCRIBERS, EVENTS)
    assert len(fan.mined) == EVENTS
    assert Counter(r.tx_hash for r in fan.receipts) == {tx: SUBSCRIBERS for tx in fan.mined}
    for subscriber in range(SUBSCRIBERS):
        seqs = [r.seq for r in fan.receipts if r.subscriber == subscriber]
        assert len(seqs) == EVENTS
        assert seqs == sorted(set(seqs))  # in order, none twice
    assert len(fan.from_written()) == SUBSCRIBERS * EVENTS
    assert len(fan.from_mined()) == SUBSCRIBERS * EVENTS
    after = api.fetch_json(f"{daemon.url}/v1/agents/{token}")["totalCredits"]
    assert after == before + EVENTS  # each event was a real top-up, indexed

    results = api.Results(agents=2, targets=[api.Target("SQLite", "", fan_out=fan)])
    results.loads.append(api.LoadFigure(api.AGENT_ENDPOINT, "SQLite", run, CONNECTIONS))
    table = api.render(results, api.parse_args(["--quick"]))
    assert f"| {api.AGENT_ENDPOINT} | SQLite | {CONNECTIONS} | {CONNECTIONS * REQUESTS} |" in table
    assert f"| SQLite | event written | {SUBSCRIBERS * EVENTS} |" in table


def test_an_answer_other_than_200_fails_the_run() -> None:
    docs = api.Documents(agents={1: {"packageTokenId": 1}}, status={"version": "x"})
    with api.server_process(api.bare_server, docs) as bare:
        run = api.run_load(bare, ["/v1/agents/1", "/v1/agents/2"], 2, 2)
    assert run.statuses == {200: 2, 404: 2}
    with pytest.raises(api.BenchError, match="404"):
        api.check_run(run, 2, 2)
    with pytest.raises(api.BenchError, match="only 2 of 3 connections"):
        api.check_run(run, 3, 2)
