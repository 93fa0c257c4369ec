"""New heads pushed over WebSocket (``eth_subscribe("newHeads")``): each one wakes the follower.

The follower still polls at its interval, so a dropped subscription only costs latency;
the subscription reconnects with backoff until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import aiohttp
import orjson

from inftd.indexer.rpc import endpoint

log = logging.getLogger(__name__)

RECONNECT_MAX = 30.0  # seconds between reconnection attempts, at most
HEARTBEAT = 20.0  # seconds between WebSocket pings


async def watch_new_heads(url: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
    """Set ``wake`` on every new head until ``stop``; never raises for network faults."""
    failures = 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                await _subscribe(session, url, wake, stop)
                failures = 0
            except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
                failures += 1
                log.warning("newHeads subscription to %s failed: %s", endpoint(url), exc)
            delay = random.uniform(0, min(RECONNECT_MAX, 0.5 * 2**failures))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)


async def _subscribe(
    session: aiohttp.ClientSession, url: str, wake: asyncio.Event, stop: asyncio.Event
) -> None:
    async with session.ws_connect(url, heartbeat=HEARTBEAT) as ws:
        await ws.send_str('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}')
        reply = orjson.loads((await ws.receive(timeout=10)).data)
        if "result" not in reply:
            raise ValueError(f"eth_subscribe refused: {reply.get('error')}")
        log.info("following new heads over %s", endpoint(url))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                receiving = asyncio.ensure_future(ws.receive())
                await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not receiving.done():
                    receiving.cancel()
                    return
                message = receiving.result()
                if message.type != aiohttp.WSMsgType.TEXT:
                    raise aiohttp.ClientError(f"subscription closed ({message.type.name})")
                if orjson.loads(message.data).get("method") == "eth_subscription":
                    wake.set()
        finally:
            stopping.cancel()
