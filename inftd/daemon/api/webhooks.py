"""``POST /v1/webhooks/chain``: contract logs pushed by a notifier (see inftd.indexer.webhook)."""

from __future__ import annotations

import time

from aiohttp import web

from inftd.daemon.http import RUNTIME, ApiError, json_response
from inftd.indexer.webhook import TIMESTAMP_HEADER, WebhookError, parse_logs


async def chain_webhook(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    secret = runtime.settings.webhook_secret
    if secret is None:
        raise ApiError(503, "webhook_disabled", "set INFTD_WEBHOOK_SECRET to accept chain webhooks")
    body = await request.read()
    try:
        # ReplayGuard's isdigit() takes "²", which int() then refuses: a 500 without this.
        if not request.headers.get(TIMESTAMP_HEADER, "").isascii():
            raise WebhookError(401, "stale", "the timestamp must be Unix seconds in ASCII")
        runtime.replay_guard.check(
            secret.get_secret_value().encode(), dict(request.headers), body, time.time()
        )
        logs = parse_logs(body)
    except WebhookError as exc:
        runtime.webhook_counts["requests_refused"] += 1
        raise ApiError(exc.status, exc.code, str(exc)) from None
    outcomes = await runtime.webhooks.ingest(logs)
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
