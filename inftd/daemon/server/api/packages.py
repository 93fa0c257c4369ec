"""``GET /v1/packages``: the package types on sale and the price of a credit, public.

What a wallet needs to buy or top up on chain (``purchasePackage(type)`` with the price as
value, ``addCredits(tokenId)`` with credits times the credit price), as this daemon is
configured; the contract holds the same figures (``inftd deploy`` set them). Wei are
strings: they outgrow a JSON number's safe integers.
"""

from __future__ import annotations

from aiohttp import web

from inftd.daemon.server.http import RUNTIME, json_response


async def get_packages(request: web.Request) -> web.Response:
    settings = request.app[RUNTIME].settings
    packages = [
        {
            "packageType": p.id,
            "name": p.name,
            "priceWei": str(p.price_wei),
            "credits": p.credits,
            "active": p.active,
        }
        for p in settings.packages
    ]
    return json_response({"packages": packages, "creditPriceWei": str(settings.credit_price_wei)})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/packages", get_packages)
