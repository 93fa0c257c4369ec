"""Building the providers from the settings: local always, the others by their keys."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from inftd.daemon.config import Settings
from inftd.daemon.errors import ConfigError
from inftd.daemon.providers.base import TextRequest, complete_text
from inftd.daemon.providers.cloudflare import CloudflareProvider
from inftd.daemon.providers.factory import build_providers, close_providers, open_providers
from inftd.daemon.providers.gemini import GeminiProvider
from inftd.daemon.providers.local import LocalProvider
from inftd.daemon.providers.openai import OpenAIProvider
from tests.support.fakes import cloudflare, gemini, openai
from tests.support.fakes.generation import reply
from tests.support.fakes.server import Fake, serve

KEYS = {
    "openai_api_key": "sk-factory-openai-SECRET",
    "gemini_api_key": "AIza-factory-gemini-SECRET",
    "cloudflare_api_token": "cf-factory-token-SECRET",
}


@pytest.fixture(autouse=True)
def _no_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in KEYS:
        monkeypatch.delenv(f"INFTD_{key.upper()}", raising=False)


def settings(tmp_path: Path, providers: dict[str, Any] | None = None, **keys: str) -> Settings:
    secrets: dict[str, Any] = {name: SecretStr(value) for name, value in keys.items()}
    return Settings.load(data_dir=tmp_path, providers=providers or {}, **secrets)


async def test_without_keys_only_the_local_provider_is_built(tmp_path: Path) -> None:
    providers = build_providers(settings(tmp_path))
    assert list(providers) == ["local"]
    assert isinstance(providers["local"], LocalProvider)
    assert providers["local"].timeout == 60
    await close_providers(providers)


async def test_each_key_adds_its_provider_with_the_configured_models(tmp_path: Path) -> None:
    configured = settings(
        tmp_path,
        {
            "timeout": 12,
            "image_timeout": 90,
            "cloudflare_account_id": "acct-9",
            "openai_text_model": "gpt-5.4-nano",
            "gemini_image_model": "gemini-3-pro-image",
        },
        **KEYS,
    )
    providers = build_providers(configured)
    try:
        assert list(providers) == ["local", "openai", "gemini", "cloudflare"]
        assert isinstance(providers["openai"], OpenAIProvider)
        assert isinstance(providers["gemini"], GeminiProvider)
        assert isinstance(providers["cloudflare"], CloudflareProvider)
        assert {(p.timeout, p.image_timeout) for p in providers.values()} == {(12, 90)}
        assert providers["openai"].text_model == "gpt-5.4-nano"
        assert providers["openai"].image_model == "gpt-image-1-mini"  # the default
        assert providers["gemini"].image_model == "gemini-3-pro-image"
        assert providers["cloudflare"].text_model == "@cf/meta/llama-3.1-8b-instruct"
        for provider in providers.values():
            assert {"text", "image", "streaming"} <= provider.capabilities
    finally:
        await close_providers(providers)


async def test_a_cloudflare_token_without_an_account_is_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    token = KEYS["cloudflare_api_token"]
    providers = build_providers(settings(tmp_path, cloudflare_api_token=token))
    assert list(providers) == ["local"]
    assert "cloudflare_account_id" in caplog.text
    assert token not in caplog.text


async def test_built_providers_reach_their_apis_at_the_configured_urls(tmp_path: Path) -> None:
    fakes = {
        "openai": Fake(key=KEYS["openai_api_key"]),
        "gemini": Fake(key=KEYS["gemini_api_key"]),
        "cloudflare": Fake(key=KEYS["cloudflare_api_token"], account="acct-9"),
    }
    async with (
        serve(openai.create_app(fakes["openai"])) as openai_url,
        serve(gemini.create_app(fakes["gemini"])) as gemini_url,
        serve(cloudflare.create_app(fakes["cloudflare"])) as cloudflare_url,
    ):
        configured = settings(
            tmp_path,
            {
                "openai_base_url": f"{openai_url}/v1",
                "gemini_base_url": f"{gemini_url}/",
                "cloudflare_base_url": cloudflare_url,
                "cloudflare_account_id": "acct-9",
            },
            **KEYS,
        )
        async with open_providers(configured) as providers:
            for name, fake in fakes.items():
                result = await complete_text(providers[name], TextRequest("hello there"))
                assert result.text == "".join(reply("hello there")[0])
                assert result.provider == name
                assert len(fake.seen) == 1
            cloudflare_provider = providers["cloudflare"]
        assert isinstance(cloudflare_provider, CloudflareProvider)
        assert cloudflare_provider._session is None  # closed on exit


def test_provider_settings_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INFTD_PROVIDERS__TIMEOUT", "7.5")
    monkeypatch.setenv("INFTD_PROVIDERS__GEMINI_TEXT_MODEL", "gemini-3.5-flash")
    monkeypatch.setenv("INFTD_GEMINI_API_KEY", KEYS["gemini_api_key"])
    providers = build_providers(Settings.load(data_dir=tmp_path))
    assert providers["gemini"].timeout == 7.5
    assert providers["gemini"].text_model == "gemini-3.5-flash"


@pytest.mark.parametrize("value", [0, -1, 10_000])
def test_a_timeout_out_of_range_is_a_config_error(tmp_path: Path, value: float) -> None:
    with pytest.raises(ConfigError) as caught:
        settings(tmp_path, {"timeout": value})
    assert caught.value.key == "providers.timeout"
