"""``inftd backfill`` as an operator runs it."""

from __future__ import annotations

import re
from pathlib import Path

from inftd.daemon.cli.devnet import FRIEND, Anvil
from inftd.daemon.cli.progress import BlockProgress
from inftd.indexer.deployment import Deployment
from tests.support.contracts import Contracts
from tests.support.processes import inftd


def test_backfill_to_a_block_then_on(chain: Anvil, deployment: Deployment, tmp_path: Path) -> None:
    contracts = Contracts(chain.url, deployment)
    contracts.buy(0)
    until = contracts.head()
    contracts.buy(2, buyer=FRIEND.address)
    deployment.write(tmp_path / "deployment.json")
    env = {"INFTD_DATA_DIR": str(tmp_path), "INFTD_CHAIN__RPC_URLS": chain.url}
    assert inftd("migrate", env=env).returncode == 0

    partial = inftd("backfill", "--to-block", str(until), env=env)
    assert partial.returncode == 0, partial.stderr
    assert re.match(rf"indexed to block {until}: \d+ blocks, 2 events stored", partial.stdout)
    assert f"block {until}/{until}" in partial.stderr  # the progress line, not on a terminal
    assert "blocks/s" in partial.stderr

    rest = inftd("backfill", env=env)
    assert rest.returncode == 0, rest.stderr
    assert f"indexed to block {contracts.head()}" in rest.stdout
    assert "2 events stored" in rest.stdout  # only the second purchase's two logs

    again = inftd("backfill", "--from-block", "1", env=env)
    assert again.returncode == 1
    assert "already indexed" in again.stderr


def test_backfill_rejects_a_backwards_range(tmp_path: Path) -> None:
    result = inftd("backfill", "--from-block", "9", "--to-block", "3", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == "inftd: error: config --to-block: 3 is before --from-block 9\n"


def test_progress_line_reports_rates_and_eta() -> None:
    progress = BlockProgress(start=100)
    line = progress.render(block=150, target=200, events=500, elapsed=5.0)
    assert line.startswith("[" + "#" * 14 + "." * 14 + "]  50.0%")
    assert "block 150/200" in line
    assert "10 blocks/s" in line
    assert "100 events/s" in line
    assert line.endswith("ETA 0:00:05")
