"""Choosing roles: ``--role``, ``daemon.roles`` in the file or the environment, and the
refusal of split roles on SQLite; all as one-line errors with exit code 2."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from inftd.daemon.config import ROLES, Settings, parse_roles
from inftd.daemon.errors import ConfigError
from inftd.daemon.process.roles import roles_of
from tests.support.processes import inftd

ONE_LINE_ERROR = r"inftd: error: config {key}: [^\n]*\n"


@pytest.mark.parametrize(
    ("given", "roles"),
    [
        ("all", list(ROLES)),
        ("api", ["api"]),
        ("relayer, Indexer", ["indexer", "relayer"]),  # in start order, any case
        ("api,all", list(ROLES)),
        (["worker", "api", "worker"], ["worker", "api"]),
    ],
)
def test_roles_are_parsed_into_start_order(given: str | list[str], roles: list[str]) -> None:
    assert parse_roles(given) == roles


@pytest.mark.parametrize("given", ["", " , ", "indexer,miner", "al"])
def test_unknown_or_missing_roles_are_refused(given: str) -> None:
    with pytest.raises(ValueError, match="role"):
        parse_roles(given)


def test_the_file_sets_roles_and_the_flag_wins(tmp_path: Path) -> None:
    config = tmp_path / "inftd.toml"
    config.write_text('[daemon]\nroles = ["api"]\nleader_retry = 0.5\n')
    assert Settings.load(config).daemon.roles == ["api"]
    flagged = Settings.load(config, daemon={"roles": parse_roles("indexer,relayer")})
    assert flagged.daemon.roles == ["indexer", "relayer"]
    assert flagged.daemon.leader_retry == 0.5  # the rest of the file's section stays


def test_split_roles_on_sqlite_are_refused(tmp_path: Path) -> None:
    assert roles_of(Settings.load(data_dir=tmp_path)) == ROLES
    with pytest.raises(ConfigError, match="needs PostgreSQL"):
        roles_of(Settings.load(data_dir=tmp_path, daemon={"roles": ["api"]}))
    postgres = Settings.load(database_url="postgresql://u@h/db", daemon={"roles": ["api"]})
    assert roles_of(postgres) == ("api",)


def test_a_bad_role_flag_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = inftd("run", "--role", "indexer,miner", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert re.fullmatch(ONE_LINE_ERROR.format(key="--role"), result.stderr)
    assert "unknown role 'miner'" in result.stderr
    assert not (tmp_path / "inftd.db").exists()  # nothing opened


def test_a_bad_role_in_the_environment_names_the_key(tmp_path: Path) -> None:
    result = inftd("run", "--data-dir", str(tmp_path), env={"INFTD_DAEMON__ROLES": "boss"})
    assert result.returncode == 2
    assert re.fullmatch(ONE_LINE_ERROR.format(key="daemon.roles"), result.stderr)


def test_split_roles_on_sqlite_are_one_line_and_exit_2(tmp_path: Path) -> None:
    result = inftd("run", "--role", "api", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert re.fullmatch(ONE_LINE_ERROR.format(key="daemon.roles"), result.stderr)
    assert "needs PostgreSQL" in result.stderr


def test_status_without_a_database_is_one_line_and_exit_1(tmp_path: Path) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"  # nothing listens on port 1
    result = inftd("status", "--data-dir", str(tmp_path), env={"INFTD_DATABASE_URL": url})
    assert result.returncode == 1
    assert re.fullmatch(r"inftd: error: cannot read the database: [^\n]*\n", result.stderr)
