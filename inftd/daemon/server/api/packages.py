"""``GET /v1/packages``: the package types on sale and the price of a credit, public.

What a wallet needs to buy or top up on chain (``purchasePackage(type)`` with the price as
value, ``addCredits(tokenId)`` with credits times the credit price), as this daemon is
configured; the contract holds the same figures (``inftd deploy`` set them). Wei are
strings: they outgrow a JSON number's safe integers.
"""

from __future__ import annotations

from typing import Annotated

from aiohttp import web
from pydantic import Field

from inftd.daemon.server.api.status import META
from inftd.daemon.server.contract.routes import Answer, Routes
from inftd.daemon.server.contract.wire import Count, Wire
from inftd.daemon.server.http import RUNTIME

ROUTES = Routes("meta", META)
Wei = Annotated[str, Field(pattern="^[0-9]+$", description="Wei, in decimal")]


class PackageOnSale(Wire):
    package_type: Count
    name: str
    price_wei: Wei
    credits: Count
    active: bool


class Packages(Wire):
    packages: list[PackageOnSale]
    credit_price_wei: Wei


@ROUTES.get(
    "/v1/packages",
    "packages",
    "The package types on sale and the price of a credit (what a wallet pays)",
    ok=Answer("The packages", Packages),
)
async def get_packages(request: web.Request) -> Packages:
    settings = request.app[RUNTIME].settings
    packages = [
        PackageOnSale(
            package_type=p.id,
            name=p.name,
            price_wei=str(p.price_wei),
            credits=p.credits,
            active=p.active,
        )
        for p in settings.packages
    ]
    return Packages(packages=packages, credit_price_wei=str(settings.credit_price_wei))


add_routes = ROUTES.add_to
