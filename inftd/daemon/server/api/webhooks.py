"""``POST /v1/webhooks/chain``: contract logs pushed by a notifier (see inftd.indexer.webhook)."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from inftd.daemon.runtime import Runtime
from inftd.daemon.server.http import RUNTIME, ApiError, json_response
from inftd.indexer.rpc import RpcError, RpcResponseError
from inftd.indexer.webhook import Outcome, WebhookError, parse_logs


async def _ingest(runtime: Runtime, logs: list[dict[str, Any]]) -> list[Outcome]:
    """Verify and store the logs; the chain's refusals and outages are answers, not 500s."""
    try:
        return await runtime.webhooks.ingest(logs)
    except RpcResponseError as exc:  # the node cannot read a field, e.g. a transactionHash
        runtime.webhook_counts["requests_refused"] += 1
        raise ApiError(400, "malformed", f"the chain refused to look a log up: {exc}") from None
    except RpcError:
        raise ApiError(503, "chain_unavailable", "the chain does not answer; retry later") from None


async def chain_webhook(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    secret = runtime.settings.webhook_secret
    if secret is None:
        raise ApiError(503, "webhook_disabled", "set INFTD_WEBHOOK_SECRET to accept chain webhooks")
    body = await request.read()
    try:
        runtime.replay_guard.check(
            secret.get_secret_value().encode(), dict(request.headers), body, time.time()
        )
        logs = parse_logs(body)
    except WebhookError as exc:
        runtime.webhook_counts["requests_refused"] += 1
        raise ApiError(exc.status, exc.code, str(exc)) from None
    outcomes = await _ingest(runtime, logs)
    tally = {s: sum(o.status == s for o in outcomes) for s in ("accepted", "duplicate", "ignored")}
    tally["rejected"] = sum(o.status == "rejected" for o in outcomes)
    for status, count in tally.items():
        runtime.webhook_counts[status] += count
    document = {"results": [o.as_json() for o in outcomes], **tally}
    if tally["rejected"]:
        return json_response(
            {"error": {"code": "rejected_logs", "message": "logs failed verification"}} | document,
            422,
        )
    if tally["accepted"]:
        runtime.indexer.wake.set()  # sync now rather than at the next poll
    return json_response(document)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/webhooks/chain", chain_webhook)
