"""Local fake AI providers that speak each provider's HTTP wire format, so the real client
code (the official SDKs, our aiohttp client) runs against them unmodified.

One aiohttp app per provider (``openai.create_app``, ``gemini.create_app``,
``cloudflare.create_app``); each kind of call is added by a function (``add_embeddings``),
so more calls (chat, images) can be added the same way. All share a ``Fake``: the key it
accepts, the requests it saw, and the failures to answer next.
"""
