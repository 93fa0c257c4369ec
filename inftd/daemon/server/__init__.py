"""The aiohttp API: ``app`` assembles it from ``api/`` (one module per concern) and the HTTP
plumbing (``http``, ``cors``, ``ratelimits``, ``access``, ``metrics``); ``openapi/`` describes
it; ``console/`` is the page it serves."""
