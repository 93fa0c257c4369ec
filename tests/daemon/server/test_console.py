"""The console at ``/``: its files and headers over HTTP, then the page itself in headless
Chromium (Debian's ``/usr/bin/chromium``, driven by playwright; nothing is downloaded).

The browser tests run the real daemon app on a TCP port over Anvil and a migrated SQLite
file, act on chain, index, and wait for the page to show the change without a reload.
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import WSCloseCode, web
from eth_utils.crypto import keccak
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from sqlalchemy import insert

from inftd.agents.events import NewEvent, record_events
from inftd.daemon.cli.dev import DEMO_ACCOUNTS
from inftd.daemon.cli.devnet import BUYER, FRIEND, MINTER, Anvil, DevAccount, rpc_call
from inftd.daemon.config import Settings
from inftd.daemon.generation.routing.recorder import MemoryRecorder
from inftd.daemon.generation.routing.router import Router
from inftd.daemon.generation.scheduler import GenerationService
from inftd.daemon.providers.local import LocalProvider
from inftd.daemon.relayer.relayer import run_relayer
from inftd.daemon.runtime import Runtime, open_runtime
from inftd.daemon.server.api.console import ASSETS
from inftd.daemon.server.api.ws import SOCKETS
from inftd.daemon.server.app import create_app
from inftd.indexer.deployment import Deployment
from inftd.store.db import sqlite_url
from inftd.store.models import Generation
from tests.daemon.cli.test_dev import DevProcess
from tests.daemon.generation.support import FAST, ROUTING
from tests.support.api import sign
from tests.support.contracts import CREDIT_PRICE_WEI, Contracts
from tests.support.schema import at_head

CHROMIUM = "/usr/bin/chromium"
INSTALL_HINT = "apt-get install -y chromium"
OPERATOR_KEY = "operator-key-for-console-tests"
WAIT_MS = 20_000  # how long the page may take to show a change (a ceiling, not a measure)
FLASHING = re.compile(r"\bflash\b")  # the class that highlights changed credits for a moment
CALLING_OUT = re.compile(r"(?:https?|wss?|ftp)://|@import|url\(")  # another origin, a CSS load
CONSOLE_DIR = Path(__file__).parents[3] / "inftd" / "daemon" / "server" / "console"
SVG_NAMESPACE = 'xmlns="http://www.w3.org/2000/svg"'
LOADED_IMAGE = """() => {
    const image = document.querySelector("#generations li img[data-content]");
    return Boolean(image && image.complete && image.naturalWidth > 0);
}"""


def chromium() -> str:
    """Debian's Chromium; missing, the test fails under CI and is skipped elsewhere."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    reason = f"the console tests need Debian's Chromium at {CHROMIUM}: {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@dataclass
class Console:
    url: str
    app: web.Application
    runtime: Runtime
    contracts: Contracts

    async def index(self) -> None:
        await self.runtime.indexer.sync_once()

    async def publish(self, event: NewEvent, generation: dict[str, object] | None = None) -> None:
        """Store an event (and the generation it tells of) as the pipeline would."""
        async with self.runtime.engine.begin() as conn:
            if generation is not None:
                await conn.execute(insert(Generation).values(**generation))
            await record_events(conn, [event])
        self.runtime.hub.poke()


@pytest.fixture
async def console(
    chain: Anvil, deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Console]:
    """The daemon's app on a free TCP port, with its hub running, over a migrated SQLite."""
    monkeypatch.setenv("INFTD_OPERATOR_API_KEY", OPERATOR_KEY)
    settings = Settings.load(
        data_dir=tmp_path,
        database_url=sqlite_url(tmp_path / "inftd.db"),
        chain={"rpc_urls": [chain.url]},
    )
    at_head(settings.database)
    stop = asyncio.Event()
    async with open_runtime(settings, deployment) as runtime:
        app = create_app(runtime)
        runner = web.AppRunner(app)
        await runner.setup()
        hub = asyncio.create_task(runtime.hub.run(stop))
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            await runtime.hub.started()
            yield Console(f"http://{host}:{port}", app, runtime, Contracts(chain.url, deployment))
        finally:
            stop.set()
            await hub
            await runner.cleanup()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable)
        try:
            yield launched
        finally:
            await launched.close()


@dataclass
class Tab:
    """A page of the console and what it did: page errors, sockets it opened."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)
    sockets: list[str] = field(default_factory=list)


@pytest.fixture
async def tab(browser: Browser, console: Console) -> AsyncIterator[Tab]:
    context = await browser.new_context(viewport={"width": 1100, "height": 900})
    page = await context.new_page()
    tab = Tab(context, page)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    page.on("websocket", lambda socket: tab.sockets.append(socket.url))
    try:
        yield tab
    finally:
        await context.close()
    assert tab.errors == [], "the page raised errors or broke its security policy"


# Over HTTP


async def test_the_page_and_its_files_are_served_with_a_strict_policy(console: Console) -> None:
    async with aiohttp.ClientSession(console.url) as http:
        async with http.get("/") as response:
            assert response.status == 200
            assert response.content_type == "text/html"
            page = await response.text()
            headers = response.headers
        assert 'src="/console/console.js"' in page
        policy = headers["Content-Security-Policy"]
        host = console.url.removeprefix("http://")
        assert "default-src 'none'" in policy
        assert "script-src 'self'" in policy
        assert f"connect-src 'self' ws://{host} wss://{host}" in policy
        assert "require-trusted-types-for 'script'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-cache"

        async with http.get("/", headers={"If-None-Match": headers["ETag"]}) as again:
            assert again.status == 304
            assert await again.read() == b""
        for name, media in ASSETS.items():
            async with http.get(f"/console/{name}") as response:
                assert response.status == 200
                assert response.content_type == media
                assert await response.read() == (CONSOLE_DIR / name).read_bytes()


async def test_only_the_console_files_are_served(console: Console) -> None:
    async with aiohttp.ClientSession(console.url) as http:
        for path in ("/console/index.html", "/console/nope.js", "/console/..%2F__init__.py"):
            async with http.get(path) as response:
                assert response.status == 404, path
                assert (await response.json())["error"]["code"] == "not_found"
        # A Host that is not a plain host[:port] is never copied into the policy.
        async with http.get("/", headers={"Host": "evil; script-src *"}) as response:
            assert response.headers["Content-Security-Policy"].endswith("connect-src 'self'")


def test_the_console_calls_out_to_nothing() -> None:
    """No CDN, font or other origin: every file refers only to this server."""
    for path in CONSOLE_DIR.iterdir():
        text = path.read_text().replace(SVG_NAMESPACE, "")  # a name, never fetched
        assert CALLING_OUT.search(text) is None, f"{path.name} loads from elsewhere"
        assert "innerHTML" not in text, path.name
        assert "insertAdjacentHTML" not in text, path.name


# In the browser


async def open_agent(tab: Tab, console: Console, token_id: int) -> None:
    page = tab.page
    await page.goto(console.url + "/")
    await page.locator(f'#agents tr[data-token="{token_id}"]').click()
    await expect(page.locator("#agent-title")).to_have_text(f"Agent #{token_id}")
    await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)


async def test_agents_are_listed_and_credits_update_live(
    tab: Tab, console: Console, tmp_path: Path
) -> None:
    console.contracts.buy(0, BUYER.address)
    console.contracts.buy(1, FRIEND.address)
    await console.index()
    page = tab.page
    await page.goto(console.url + "/")
    rows = page.locator("#agents tbody tr")
    await expect(rows).to_have_count(2)
    await expect(rows.nth(0)).to_contain_text("#1")
    await expect(rows.nth(1).locator('[data-field="availableCredits"]')).to_have_text("600")
    await expect(page.locator("#sign-in")).to_be_hidden()  # no wallet in this browser

    await open_agent(tab, console, 1)
    credits = page.locator('#credits [data-field="availableCredits"]')
    await expect(credits).to_have_text("100")
    await expect(page.locator('#agent [data-field="owner"]')).to_have_text(BUYER.address)
    await page.evaluate("window.notReloaded = true")  # a reload would forget it
    before = await credits.screenshot(animations="disabled")
    again = await credits.screenshot(animations="disabled")
    assert changed_pixels(before, again) == 0, "screenshots of the same state differ"
    await page.screenshot(path=tmp_path / "before.png", full_page=True)

    console.contracts.top_up(1, 50)
    await console.index()
    await expect(credits).to_have_text("150", timeout=WAIT_MS)
    await expect(page.locator("#credits")).not_to_have_class(FLASHING, timeout=WAIT_MS)
    after = await credits.screenshot(animations="disabled")
    await page.screenshot(path=tmp_path / "after.png", full_page=True)

    assert await page.evaluate("window.notReloaded") is True
    await expect(page.locator('#agent [data-field="totalCredits"]')).to_have_text("150")
    await expect(page.locator("#events li").first).to_contain_text("credits.changed")
    row = page.locator('#agents tr[data-token="1"] [data-field="availableCredits"]')
    await expect(row).to_have_text("150")
    assert distinct_colours(before) > 1, "the credits were not drawn"
    assert changed_pixels(before, after) > 0, "the screenshot of the credits did not change"


async def test_the_page_reconnects_and_resumes_after_the_last_event(
    tab: Tab, console: Console
) -> None:
    console.contracts.buy(0, BUYER.address)
    await console.index()
    await open_agent(tab, console, 1)
    console.contracts.top_up(1, 5)
    await console.index()
    credits = tab.page.locator('#credits [data-field="availableCredits"]')
    await expect(credits).to_have_text("105", timeout=WAIT_MS)
    seen = int(await tab.page.locator("#events li").first.get_attribute("data-seq") or "0")

    await close_sockets(console)  # as a restart or a dropped connection would
    console.contracts.top_up(1, 7)  # while the page may be away
    await console.index()
    await expect(credits).to_have_text("112", timeout=WAIT_MS)
    await expect(tab.page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    assert tab.sockets[0].endswith("/v1/agents/1/ws")
    assert tab.sockets[1].endswith(f"/v1/agents/1/ws?since={seen}")


async def close_sockets(console: Console) -> None:
    """Close the server's end of every WebSocket, as a daemon restart does."""
    open_sockets: set[web.WebSocketResponse] = console.app[SOCKETS]
    sockets = list(open_sockets)
    assert sockets, "the page has no open WebSocket"
    for ws in sockets:
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"restarting")


async def test_a_finished_generation_appears_without_a_reload(
    tab: Tab, console: Console, tmp_path: Path
) -> None:
    console.contracts.buy(0, BUYER.address)
    await console.index()
    await open_agent(tab, console, 1)
    page = tab.page
    await expect(page.locator("#generations-empty")).to_be_visible()
    await page.evaluate("window.notReloaded = true")

    prompt = "a lighthouse at dusk <script>window.pwned = 1</script>"
    generation = {
        "id": "6f1c1d6e-0000-4000-8000-000000000001",
        "token_id": 1,
        "kind": "image",
        "prompt": prompt,
        "source": "api",
        "status": "succeeded",
        "provider": "local",
        "content_uri": "ipfs://bafy-lighthouse",
    }
    done = NewEvent("generation.succeeded", 1, {"generationId": generation["id"]})
    await console.publish(done, generation)

    item = page.locator("#generations li")
    await expect(item).to_have_count(1, timeout=WAIT_MS)
    await expect(item).to_contain_text(prompt)
    await expect(item).to_contain_text("ipfs://bafy-lighthouse")
    await expect(page.locator("#generations-empty")).to_be_hidden()
    await expect(page.locator("#events li").first).to_contain_text("generation.succeeded")
    assert await page.evaluate("window.notReloaded") is True
    assert await page.evaluate("window.pwned") is None
    await page.screenshot(path=tmp_path / "generation.png", full_page=True)


@dataclass
class FakeWallet:
    """An injected EIP-1193 wallet whose personal_sign signs in Python with a dev key."""

    account: DevAccount
    signed: list[str] = field(default_factory=list)

    def sign(self, message_hex: str, address: str) -> str:
        assert address == self.account.address
        message = bytes.fromhex(message_hex.removeprefix("0x")).decode()
        self.signed.append(message)
        return sign(message, self.account.key)

    def script(self) -> str:
        address = orjson.dumps(self.account.address).decode()
        return f"""
            window.ethereum = {{
                async request({{ method, params }}) {{
                    if (method === "eth_requestAccounts") return [{address}];
                    if (method === "personal_sign") return window.inftdTestSign(...params);
                    throw new Error("unsupported: " + method);
                }},
            }};
        """

    async def install(self, context: BrowserContext) -> None:
        await context.expose_function("inftdTestSign", self.sign)
        await context.add_init_script(self.script())


async def test_the_owner_signs_in_with_the_wallet_and_edits_preferences(
    tab: Tab, console: Console, tmp_path: Path
) -> None:
    console.contracts.buy(0, BUYER.address)
    await console.index()
    wallet = FakeWallet(BUYER)
    await wallet.install(tab.context)
    await open_agent(tab, console, 1)
    page = tab.page
    await expect(page.locator("#preferences-form")).to_be_hidden()

    await page.locator("#sign-in").click()
    await expect(page.locator("#address")).to_have_text(BUYER.address, timeout=WAIT_MS)
    await expect(page.locator("#owner-badge")).to_be_visible()
    host = console.url.removeprefix("http://")
    assert wallet.signed[0].startswith(f"{host} wants you to sign in")
    await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    assert "access_token=" in tab.sockets[-1]  # the socket now carries the owner's token
    await console.publish(NewEvent("memory.added", 1, {"note": "for the owner"}, private=True))
    await expect(page.locator("#events li").first).to_contain_text("memory.added", timeout=WAIT_MS)

    await page.locator("#preferences-input").fill('{"style": "noir", "steps": 30}')
    await page.get_by_role("button", name="Save preferences").click()
    await expect(page.locator("#preferences-result")).to_have_text("Saved.", timeout=WAIT_MS)
    await expect(page.locator("#preferences")).to_contain_text('"style": "noir"')
    await page.screenshot(path=tmp_path / "owner.png", full_page=True)
    async with aiohttp.ClientSession(console.url) as http, http.get("/v1/agents/1") as response:
        assert (await response.json())["preferences"] == {"style": "noir", "steps": 30}

    await page.reload()  # the sign-in lasts as long as the tab
    await expect(page.locator("#owner-badge")).to_be_visible(timeout=WAIT_MS)


async def test_another_wallet_signs_in_without_the_owner_view(tab: Tab, console: Console) -> None:
    console.contracts.buy(0, BUYER.address)
    await console.index()
    await FakeWallet(FRIEND).install(tab.context)
    await open_agent(tab, console, 1)
    await tab.page.locator("#sign-in").click()
    await expect(tab.page.locator("#address")).to_have_text(FRIEND.address, timeout=WAIT_MS)
    await expect(tab.page.locator("#owner-badge")).to_be_hidden()
    await expect(tab.page.locator("#preferences-form")).to_be_hidden()
    await expect(tab.page.locator("#live")).to_have_text("live", timeout=WAIT_MS)
    await console.publish(NewEvent("memory.added", 1, {"note": "for the owner"}, private=True))
    await console.publish(NewEvent("metadata.updated", 1, {"uri": "ipfs://meta"}))
    events = tab.page.locator("#events li")
    await expect(events.first).to_contain_text("metadata.updated", timeout=WAIT_MS)
    await expect(events).to_have_count(1)  # the private one never reached this address


async def test_data_is_shown_as_text_never_as_markup(tab: Tab, console: Console) -> None:
    console.contracts.buy(0, BUYER.address)
    await console.index()
    markup = '<img src=x onerror="window.pwned = 1"><b>bold</b>'
    async with aiohttp.ClientSession(console.url) as http:
        headers = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        async with http.put("/v1/agents/1/preferences", json={"n": markup}, headers=headers) as r:
            assert r.status == 200
    await open_agent(tab, console, 1)
    await expect(tab.page.locator("#preferences")).to_contain_text(markup.replace('"', '\\"'))
    assert await tab.page.locator("#agent img, #agent b").count() == 0
    assert await tab.page.evaluate("window.pwned") is None


# A small PNG reader (8-bit RGB or RGBA, not interlaced: what Chromium writes), so the
# pixels of two screenshots can be compared without an imaging library.


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    pixels: list[bytes]  # one bytes object per pixel, row by row


def decode_png(png: bytes) -> Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, data, header = 8, b"", b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind, body = png[offset + 4 : offset + 8], png[offset + 8 : offset + 8 + length]
        offset += 12 + length  # length, type, body, CRC
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            data += body
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0), "an unexpected PNG format"
    assert colour in (2, 6), "neither RGB nor RGBA"
    size = 3 if colour == 2 else 4
    raw, stride, previous = zlib.decompress(data), width * size, bytes(width * size)
    pixels: list[bytes] = []
    for y in range(height):
        start = y * (stride + 1)
        row = unfilter(raw[start], raw[start + 1 : start + 1 + stride], previous, size)
        pixels += [row[x : x + size] for x in range(0, stride, size)]
        previous = row
    return Image(width, height, pixels)


def unfilter(kind: int, line: bytes, up: bytes, size: int) -> bytes:
    """Undo one of PNG's five row filters (0 none, 1 sub, 2 up, 3 average, 4 Paeth)."""
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - size] if i >= size else 0
        corner = up[i - size] if i >= size else 0
        predictor = (0, left, up[i], (left + up[i]) // 2, paeth(left, up[i], corner))[kind]
        out[i] = (out[i] + predictor) & 0xFF
    return bytes(out)


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def distinct_colours(png: bytes) -> int:
    return len(set(decode_png(png).pixels))


def changed_pixels(before: bytes, after: bytes) -> int:
    old, new = decode_png(before), decode_png(after)
    assert (old.width, old.height) == (new.width, new.height), "the credits moved or resized"
    return sum(a != b for a, b in zip(old.pixels, new.pixels, strict=True))


# The product's face: what a person does under inftd dev, with no wallet and no curl.


@dataclass
class Stack:
    """The whole loop in one process, as inftd dev runs it: API with demo accounts,
    indexer, hub, generation worker (the template provider, streaming slowly enough to
    watch) and the mint relayer."""

    url: str
    runtime: Runtime


@pytest.fixture
async def stack(
    chain: Anvil, deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Stack]:
    monkeypatch.setenv("INFTD_MINTER_KEY", MINTER.key)
    settings = Settings.load(
        data_dir=tmp_path,
        database_url=sqlite_url(tmp_path / "inftd.db"),
        chain={"rpc_urls": [chain.url], "poll_interval": 0.2},
        generation=FAST,
        routing=ROUTING,
        relayer={"poll_interval": 0.2},
        api={"rate_per_ip": 100_000, "rate_per_address": 100_000},
    )
    at_head(settings.database)
    stop = asyncio.Event()
    async with open_runtime(settings, deployment) as runtime:
        runner = web.AppRunner(create_app(runtime, DEMO_ACCOUNTS))
        await runner.setup()
        router = Router({"local": LocalProvider(delay=0.05)}, settings.routing, MemoryRecorder())
        service = GenerationService(runtime, router, owner="console-test-worker")
        loops = [
            asyncio.create_task(runtime.hub.run(stop)),
            asyncio.create_task(runtime.indexer.run(stop)),
            asyncio.create_task(run_relayer(runtime, stop)),
        ]
        await service.start()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            await runtime.hub.started()
            yield Stack(f"http://{host}:{port}", runtime)
        finally:
            stop.set()
            await service.stop()
            await asyncio.gather(*loops)
            await runner.cleanup()


async def stack_tab(browser: Browser, stack: Stack, width: int, height: int) -> Tab:
    context = await browser.new_context(viewport={"width": width, "height": height})
    page = await context.new_page()
    tab = Tab(context, page)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))
    page.on("console", lambda m: tab.errors.append(m.text) if m.type == "error" else None)
    await page.goto(stack.url + "/")
    return tab


async def sign_in_as(page: Page, name: str) -> None:
    await page.locator(f'#demo-accounts button[data-account="{name}"]').click()
    await expect(page.locator("#signed-as")).to_have_text(f"(demo {name})", timeout=WAIT_MS)


async def buy_and_open(page: Page, token_id: int) -> None:
    await page.locator("#buy-form button").click()
    row = page.locator(f'#agents tr[data-token="{token_id}"]')
    for _ in range(40):  # the indexer takes the purchase in; the list is read again
        if await row.count():
            break
        await page.locator("#refresh").click()
        await page.wait_for_timeout(250)
    await row.click()
    await expect(page.locator("#owner-badge")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator("#live")).to_have_text("live", timeout=WAIT_MS)


async def test_a_demo_account_buys_asks_watches_it_stream_and_mint_and_rates_it(
    browser: Browser, stack: Stack, tmp_path: Path
) -> None:
    tab = await stack_tab(browser, stack, 1280, 900)
    page = tab.page
    try:
        await expect(page.locator("#sign-in")).to_be_hidden()  # no wallet in this browser
        await expect(page.locator("#template-note")).to_be_visible(timeout=WAIT_MS)
        await sign_in_as(page, "buyer")
        await buy_and_open(page, 1)

        await page.locator("#generate-prompt").fill("a lighthouse at dawn over a quiet harbour")
        await page.locator("#generate-style").fill("noir")
        await page.get_by_role("button", name="Generate").click()
        item = page.locator("#generations li").first
        # Text as it is written: the stream box is there only until the generation ends.
        await expect(item.locator("[data-stream]")).not_to_have_text("", timeout=WAIT_MS)
        await expect(item).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
        made = item.locator("[data-content]")
        await expect(made).to_contain_text("[Template text", timeout=WAIT_MS)
        await expect(item).to_contain_text("template (no model)")
        await expect(item).to_contain_text("$0.0000")
        await expect(item.locator('[data-mint="confirmed"]')).to_be_visible(timeout=WAIT_MS)
        await expect(item.locator(".mint code")).to_have_text(re.compile(r"^0x[0-9a-f]{4}…"))

        await item.locator("[data-rate] input").fill("calm")
        await item.locator('[data-rating="5"]').click()
        await expect(item.locator(".rated")).to_have_text("rated 5/5", timeout=WAIT_MS)
        learned = page.locator('#learned li[data-dimension="styles"]')
        await expect(learned.first).to_contain_text("noir", timeout=WAIT_MS)

        await page.locator("#generate-kind").select_option("image")
        await page.locator("#generate-prompt").fill("a red lighthouse")
        await page.get_by_role("button", name="Generate").click()
        image = page.locator("#generations li").first.locator("img[data-content]")
        await expect(image).to_be_visible(timeout=WAIT_MS)
        await page.wait_for_function(LOADED_IMAGE, timeout=WAIT_MS)  # drawn, not only tagged

        credits = page.locator('#credits [data-field="totalCredits"]')
        before = int(await credits.text_content() or "0")
        await page.locator("#top-up-credits").fill("25")
        await page.get_by_role("button", name="Add credits").click()
        await expect(credits).to_have_text(str(before + 25), timeout=WAIT_MS)
        await page.screenshot(path=tmp_path / "desktop.png", full_page=True)
        # The README's picture of the console (docs/console.png) is this one.
        top = {"x": 0, "y": 0, "width": 1280, "height": 1400}
        await page.screenshot(path=tmp_path / "console.png", clip=top, full_page=True)
    finally:
        await tab.context.close()
    assert tab.errors == []


async def test_agents_write_to_each_other_and_lend_their_styles(
    browser: Browser, stack: Stack
) -> None:
    tab = await stack_tab(browser, stack, 1280, 900)
    page = tab.page
    try:
        await sign_in_as(page, "friend")
        await buy_and_open(page, 1)  # the friend's agent
        await page.locator("#sign-out").click()
        await sign_in_as(page, "buyer")
        await buy_and_open(page, 2)  # the buyer's
        await page.locator("#message-to").fill("1")
        await page.locator("#message-text").fill("hello from #2")
        await page.get_by_role("button", name="Send").click()
        await expect(page.locator("#message-result")).to_have_text("Sent to #1.", timeout=WAIT_MS)
        await page.locator("#grant-to").fill("1")
        await page.get_by_role("button", name="borrow my styles").click()
        await expect(page.locator("#grants")).to_contain_text(
            "lends its styles to #1", timeout=WAIT_MS
        )

        await page.locator("#sign-out").click()
        await sign_in_as(page, "friend")
        await page.goto(stack.url + "/#/agents/1")
        await expect(page.locator("#owner-badge")).to_be_visible(timeout=WAIT_MS)
        await expect(page.locator("#inbox")).to_contain_text("hello from #2", timeout=WAIT_MS)
        await expect(page.locator("#grants")).to_contain_text("borrows the styles of #2")
    finally:
        await tab.context.close()
    assert tab.errors == []


@pytest.mark.parametrize(("width", "height"), [(390, 844), (1280, 900)])
async def test_the_layout_holds_at_a_phone_s_and_a_desktop_s_width(
    browser: Browser, stack: Stack, tmp_path: Path, width: int, height: int
) -> None:
    tab = await stack_tab(browser, stack, width, height)
    page = tab.page
    try:
        await sign_in_as(page, "buyer")
        await buy_and_open(page, 1)
        await page.locator("#generate-prompt").fill("a lighthouse")
        await page.get_by_role("button", name="Generate").click()
        item = page.locator("#generations li").first
        await expect(item).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
        await page.screenshot(path=tmp_path / f"{width}.png", full_page=True)
        # Nothing wider than the window: no sideways scrolling of the page itself.
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        # (The agents' table may be wider: it scrolls inside its own box, .scroll.)
        for selector in ("#generate-form", "#credits", "#generations", ".scroll", ".bar"):
            box = await page.locator(selector).first.bounding_box()
            assert box is not None, selector
            assert box["x"] >= 0, selector
            assert box["x"] + box["width"] <= width + 0.5, selector
        shot = await page.locator("#credits").screenshot()
        assert distinct_colours(shot) > 1, "the credits were not drawn"
    finally:
        await tab.context.close()
    assert tab.errors == []


async def test_a_daemon_on_a_real_chain_offers_no_demo_account(tab: Tab, console: Console) -> None:
    """create_app without demo accounts, as inftd run builds it: none listed, none acted as."""
    async with aiohttp.ClientSession(console.url) as http:
        async with http.get("/v1/dev/accounts") as listed:
            assert (listed.status, await listed.json()) == (200, {"accounts": []})
        for path in ("/v1/dev/sign-in", "/v1/dev/buy", "/v1/dev/top-up"):
            async with http.post(path, json={"account": "buyer"}) as refused:
                assert refused.status in (404, 405), path
    await tab.page.goto(console.url + "/")
    await expect(tab.page.locator("#agents-empty")).to_be_visible(timeout=WAIT_MS)
    await expect(tab.page.locator("#demo-accounts")).to_be_hidden()


def test_the_console_s_selectors_are_the_contract_s() -> None:
    script = (CONSOLE_DIR / "console.js").read_text()
    for signature in ("purchasePackage(uint8)", "addCredits(uint256)"):
        selector = "0x" + keccak(text=signature)[:4].hex()
        assert f'"{selector}"; // {signature}' in script, signature


@dataclass
class SendingWallet(FakeWallet):
    """A wallet that also sends transactions: to the test chain, from its unlocked account."""

    rpc_url: str = ""
    sent: list[dict[str, str]] = field(default_factory=list)

    def send(self, tx: dict[str, str]) -> str:
        assert tx["from"].lower() == self.account.address.lower()
        self.sent.append(tx)
        return str(rpc_call(self.rpc_url, "eth_sendTransaction", [tx]))

    def script(self) -> str:
        address = orjson.dumps(self.account.address).decode()
        return f"""
            window.ethereum = {{
                async request({{ method, params }}) {{
                    if (method === "eth_requestAccounts") return [{address}];
                    if (method === "personal_sign") return window.inftdTestSign(...params);
                    if (method === "eth_sendTransaction") return window.inftdTestSend(params[0]);
                    throw new Error("unsupported: " + method);
                }},
            }};
        """

    async def install(self, context: BrowserContext) -> None:
        await context.expose_function("inftdTestSend", self.send)
        await super().install(context)


async def test_a_wallet_buys_and_tops_up_with_its_own_transactions(
    tab: Tab, console: Console, chain: Anvil
) -> None:
    wallet = SendingWallet(FRIEND, rpc_url=chain.url)
    await wallet.install(tab.context)
    page = tab.page
    await page.goto(console.url + "/")
    await page.locator("#sign-in").click()
    await expect(page.locator("#address")).to_have_text(FRIEND.address, timeout=WAIT_MS)
    await expect(page.locator("#signed-as")).to_have_text("")  # a wallet, not a demo account
    await page.locator("#buy-package").select_option("1")
    await page.locator("#buy-form button").click()
    await expect(page.locator("#buy-result")).to_contain_text("Bought", timeout=WAIT_MS)
    await console.index()
    await page.locator("#refresh").click()
    await open_agent(tab, console, 1)
    await expect(page.locator('#agent [data-field="owner"]')).to_have_text(FRIEND.address)
    await page.locator("#top-up-credits").fill("30")
    await page.get_by_role("button", name="Add credits").click()
    await expect(page.locator("#top-up-result")).to_contain_text("Sent", timeout=WAIT_MS)
    await console.index()
    credits = page.locator('#credits [data-field="totalCredits"]')
    await expect(credits).to_have_text("630", timeout=WAIT_MS)  # Creator: 600, and 30
    purchase, top_up = wallet.sent
    assert purchase["data"].startswith("0x237a5a75")
    assert int(purchase["value"], 16) == 5 * 10**16  # the Creator's price
    assert top_up["data"] == "0x2aea58b2" + f"{1:064x}"
    assert int(top_up["value"], 16) == 30 * CREDIT_PRICE_WEI


@pytest.mark.timeout(300)
async def test_make_dev_s_own_stack_from_the_browser(browser: Browser, tmp_path: Path) -> None:
    """`inftd dev` as a person runs it, then its console with no wallet and no curl: buy
    as the demo buyer, ask for a text and watch it stream, see it minted, rate it, ask for
    an image and see it."""
    dev = DevProcess(tmp_path / "data")
    try:
        urls = dev.wait_for_banner()
        context = await browser.new_context(viewport={"width": 1280, "height": 900})
        page = await context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        await page.goto(urls["api"] + "/")
        await sign_in_as(page, "buyer")
        await buy_and_open(page, 1)

        await page.locator("#generate-prompt").fill("a lighthouse keeper's first morning")
        await page.get_by_role("button", name="Generate").click()
        item = page.locator("#generations li").first
        await expect(item.locator("[data-stream]")).not_to_have_text("", timeout=WAIT_MS)
        await expect(item).to_have_attribute("data-status", "succeeded", timeout=WAIT_MS)
        await expect(item.locator("[data-content]")).to_contain_text("lighthouse", timeout=WAIT_MS)
        await expect(item.locator('[data-mint="confirmed"]')).to_be_visible(timeout=WAIT_MS)
        await item.locator('[data-rating="4"]').click()
        await expect(item.locator(".rated")).to_have_text("rated 4/5", timeout=WAIT_MS)

        await page.locator("#generate-kind").select_option("image")
        await page.locator("#generate-prompt").fill("a lighthouse in a storm")
        await page.get_by_role("button", name="Generate").click()
        await page.wait_for_function(LOADED_IMAGE, timeout=WAIT_MS)
        await context.close()
        assert errors == []
    finally:
        assert dev.stop() == 0, dev.output
