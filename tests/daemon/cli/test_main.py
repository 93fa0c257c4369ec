"""The ``inftd`` command as a user runs it: exit codes, one-line errors, migrate and run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import orjson
import pytest

from inftd.daemon.cli.devnet import Anvil
from inftd.indexer.deployment import Deployment
from inftd.store import migrate
from tests.support.processes import inftd


def test_migrate_brings_a_database_to_head(database_url: str, tmp_path: Path) -> None:
    result = inftd("migrate", "--database-url", database_url, "--data-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"database at revision {migrate.head_revision()}"
    assert migrate.current_revision(database_url) == migrate.head_revision()


def test_migrate_uses_the_data_dir_from_the_environment(tmp_path: Path) -> None:
    result = inftd("migrate", env={"INFTD_DATA_DIR": str(tmp_path / "d")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "inftd.db").is_file()


def test_a_bad_config_value_is_one_line_naming_the_key(tmp_path: Path) -> None:
    result = inftd("migrate", "--data-dir", str(tmp_path), env={"INFTD_LOG_LEVEL": "LOUD"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert re.fullmatch(r"inftd: error: config log_level: .*'LOUD'\)\n", result.stderr)


def test_a_bad_database_url_is_one_line(tmp_path: Path) -> None:
    result = inftd("migrate", "--database-url", "mysql://x@y/z", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "unsupported database URL" in result.stderr


def test_run_without_a_deployment_says_what_to_do(tmp_path: Path) -> None:
    result = inftd("run", "--data-dir", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr == (
        f"inftd: error: no deployment file at {tmp_path / 'deployment.json'}: "
        "run `inftd deploy` first\n"
    )


def test_usage_errors_come_from_argparse() -> None:
    result = inftd("deploy")
    assert result.returncode == 2
    assert "--rpc-url" in result.stderr


@pytest.mark.timeout(120)
def test_run_serves_until_sigterm(chain: Anvil, deployment: Deployment, tmp_path: Path) -> None:
    deployment.write(tmp_path / "deployment.json")
    env = {"INFTD_DATA_DIR": str(tmp_path), "INFTD_CHAIN__RPC_URLS": chain.url}
    assert inftd("migrate", env=env).returncode == 0
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INFTD_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "inftd.daemon.cli.main", "run", "--api-port", "0"],
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = re.match(r"inftd API on (http://\S+)", line)
        assert match, line + (process.stderr.read() if process.poll() is not None else "")
        with urllib.request.urlopen(match[1] + "/v1/status", timeout=10) as response:
            status = orjson.loads(response.read())
        assert status["deployment"]["packageAddress"] == deployment.package_address
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
