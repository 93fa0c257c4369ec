"""The router's response cache: the same request to the same model gets the stored answer.

The key is the sha256 of the capability, provider, model, the prompt and system text
normalized (Unicode NFC, runs of whitespace as one space, trimmed) and the parameters that
shape the answer (max_tokens and temperature; size and quality). Entries live
``cache_ttl`` seconds in this process's memory, least recently used out first beyond
``cache_max_entries`` or ``cache_max_bytes``. Answers that cost nothing (the local
provider) are not kept: a hit would save nothing.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from inftd.daemon.config import RoutingSettings
from inftd.daemon.generation.routing.health import Clock
from inftd.daemon.providers.base import ImageRequest, ImageResult, TextRequest, TextResult

Answer = TextResult | ImageResult


@dataclass(frozen=True, slots=True)
class _Entry:
    answer: Answer
    size: int  # bytes it holds, roughly
    expires: float


def normalized(text: str | None) -> str:
    return " ".join(unicodedata.normalize("NFC", text or "").split())


def cache_key(provider: str, model: str, request: TextRequest | ImageRequest) -> str:
    params: dict[str, Any]
    if isinstance(request, TextRequest):
        params = {
            "capability": "text",
            "system": normalized(request.system),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
    else:
        params = {"capability": "image", "size": request.size, "quality": request.quality}
    params |= {"provider": provider, "model": model, "prompt": normalized(request.prompt)}
    return hashlib.sha256(orjson.dumps(params, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _size(answer: Answer) -> int:
    return len(answer.text.encode()) if isinstance(answer, TextResult) else len(answer.data)


class ResponseCache:
    def __init__(self, settings: RoutingSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    @property
    def enabled(self) -> bool:
        return self._settings.cache

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Answer | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= self._clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry.answer

    def put(self, key: str, answer: Answer) -> None:
        size = _size(answer)
        if not self.enabled or answer.usage.cost_usd <= 0 or size > self._settings.cache_max_bytes:
            return
        if key in self._entries:
            self._drop(key)
        self._entries[key] = _Entry(answer, size, self._clock() + self._settings.cache_ttl)
        self._bytes += size
        while (
            len(self._entries) > self._settings.cache_max_entries
            or self._bytes > self._settings.cache_max_bytes
        ):
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        self._bytes -= self._entries.pop(key).size
