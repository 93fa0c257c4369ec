"""A model server you run: any OpenAI-compatible one (Ollama, llama.cpp's server, vLLM,
LM Studio), at ``providers.local_llm_base_url`` with ``providers.local_llm_model``.

The OpenAI provider's client and stream handling, with the wire's common denominator
(``max_tokens``, not OpenAI's ``max_completion_tokens``), text only, and no price: the
server is yours. A key is sent only if ``INFTD_LOCAL_LLM_API_KEY`` is set (Ollama and
llama.cpp ignore it; vLLM and LM Studio may be set to want one).
"""

from __future__ import annotations

from inftd.daemon.providers.base import Capability, ImageRequest, ImageResult, ProviderError
from inftd.daemon.providers.openai import OpenAIProvider
from inftd.daemon.providers.prices import LOCAL_LLM, PriceTable

NAME = "local_llm"
NO_KEY = "not-needed"  # the SDK wants a key; local servers ignore what it is


class LocalLlmProvider(OpenAIProvider):
    name = NAME
    capabilities: frozenset[Capability] = frozenset({"text", "streaming"})
    prices: PriceTable = LOCAL_LLM
    tokens_field = "max_tokens"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        super().__init__(api_key or NO_KEY, base_url=base_url, timeout=timeout, text_model=model)
        self.image_model = None

    async def image(self, request: ImageRequest) -> ImageResult:
        raise ProviderError(NAME, "refused", "a local model server draws no images")
