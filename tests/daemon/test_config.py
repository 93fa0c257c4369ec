from __future__ import annotations

from pathlib import Path

import pytest

from inftd.daemon.config import Settings
from inftd.daemon.errors import ConfigError

SECRET = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("INFTD_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "inftd.toml"
    path.write_text(body)
    return path


def test_defaults_need_nothing(tmp_path: Path) -> None:
    settings = Settings.load(data_dir=tmp_path)
    assert settings.database == f"sqlite:///{(tmp_path / 'inftd.db').resolve()}"
    assert settings.deployment_path == tmp_path / "deployment.json"
    assert [p.credits for p in settings.packages] == [100, 600, 3000]
    assert settings.secret_values() == []


def test_precedence_flag_over_env_over_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(tmp_path, '[api]\nport = 7000\nhost = "0.0.0.0"\n[chain]\nconfirmations = 3\n')
    assert Settings.load(config).api.port == 7000
    monkeypatch.setenv("INFTD_API__PORT", "7100")
    settings = Settings.load(config)
    assert (settings.api.port, settings.api.host, settings.chain.confirmations) == (
        7100,
        "0.0.0.0",
        3,
    )
    assert Settings.load(config, api={"port": 7200}).api.port == 7200


def test_lists_from_env_take_commas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFTD_CHAIN__RPC_URLS", "http://a:1, https://b/rpc")
    assert Settings.load().chain.rpc_urls == ["http://a:1", "https://b/rpc"]


def test_packages_from_the_file(tmp_path: Path) -> None:
    config = write(tmp_path, '[[packages]]\nid = 7\nname = "Solo"\nprice_wei = 5\ncredits = 9\n')
    (package,) = Settings.load(config).packages
    assert (package.id, package.name, package.price_wei, package.credits) == (7, "Solo", 5, 9)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("[api]\nport = 70000\n", "api.port"),
        ("[chain]\nrpc_urls = ['ftp://x']\n", "chain.rpc_urls"),
        ("log_level = 'LOUD'\n", "log_level"),
        ("colour = 'blue'\n", "colour"),
        ("[[packages]]\nid = 1\nname = 'x'\nprice_wei = 1\ncredits = 0\n", "packages.0.credits"),
    ],
)
def test_a_bad_value_names_its_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.load(write(tmp_path, body))
    assert info.value.key == key
    assert "\n" not in str(info.value)


def test_a_bad_env_value_names_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFTD_API__PORT", "many")
    with pytest.raises(ConfigError, match=r"^config api\.port: .*'many'"):
        Settings.load()


def test_broken_toml_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.load(write(tmp_path, "[api\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        Settings.load(tmp_path / "missing.toml")


def test_secrets_in_the_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="INFTD_MINTER_KEY") as info:
        Settings.load(write(tmp_path, f'minter_key = "{SECRET}"\n'))
    assert SECRET not in str(info.value)


def test_secrets_from_env_stay_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFTD_MINTER_KEY", SECRET)
    settings = Settings.load()
    assert settings.secret_values() == [SECRET]
    assert SECRET not in repr(settings)
    assert SECRET not in settings.model_dump_json()
