"""AI providers behind one small interface (``base.Provider``): OpenAI, Gemini, Cloudflare
Workers AI and the offline local provider, with their price tables (``prices``).

The router, the strategies and the queue take providers from
``factory.build_providers(settings)`` (imported from there, as it loads the SDKs). They
hand in ``TextRequest``/``ImageRequest`` and get ``TextResult``/``ImageResult`` with
``Usage``, or a ``ProviderError`` (kind, transient, retry_after) for every fault.
"""

from __future__ import annotations

from inftd.daemon.providers.base import (
    Capability,
    ErrorKind,
    ImageRequest,
    ImageResult,
    Provider,
    ProviderError,
    Quality,
    TextRequest,
    TextResult,
    Usage,
    complete_text,
)

__all__ = [
    "Capability",
    "ErrorKind",
    "ImageRequest",
    "ImageResult",
    "Provider",
    "ProviderError",
    "Quality",
    "TextRequest",
    "TextResult",
    "Usage",
    "complete_text",
]
