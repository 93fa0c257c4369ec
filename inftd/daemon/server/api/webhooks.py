"""``POST /v1/webhooks/chain``: contract logs pushed by a notifier (see inftd.indexer.webhook).

The request is signed over its raw bytes, so the route reads them itself: the signature is
checked first (its ``auth``), and only then is the body parsed as ``ChainLogs``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.json_schema import SkipJsonSchema

from inftd.daemon.auth.tokens import Principal
from inftd.daemon.runtime import Runtime
from inftd.daemon.server.contract.routes import Answer, Auth, Routes, validation_error
from inftd.daemon.server.contract.wire import ADDRESS, HEX, Body, Code, Count, Wire
from inftd.daemon.server.http import RUNTIME, ApiError
from inftd.indexer.rpc import RpcResponseError
from inftd.indexer.webhook import MAX_LOGS, REPLAY_WINDOW, Outcome, WebhookError

ROUTES = Routes("webhooks", "Chain logs in, agents' events out")
PATH = "/v1/webhooks/chain"
Quantity = Annotated[str, Field(pattern=HEX)]
TALLIED = ("accepted", "duplicate", "ignored", "rejected")  # outcomes counted in the answer


class ChainLog(Body):
    """A log exactly as eth_getLogs gives it (more fields than these are kept)."""

    model_config = ConfigDict(extra="allow")
    address: Annotated[str, Field(pattern=ADDRESS)]
    topics: Annotated[list[Quantity], Field(max_length=4)]
    data: Quantity
    block_number: Quantity
    block_hash: Quantity
    transaction_hash: Quantity
    log_index: Quantity


class ChainLogs(Body):
    """Logs exactly as eth_getLogs gives them; other fields of the body are ignored."""

    model_config = ConfigDict(extra="allow")
    error_code = "malformed"
    logs: Annotated[list[ChainLog], Field(min_length=1, max_length=MAX_LOGS), Code("malformed")]


LOGS = TypeAdapter(ChainLogs)


class LogOutcome(Wire):
    transaction_hash: str
    log_index: str
    status: Literal["accepted", "duplicate", "ignored", "rejected", "held"]
    reason: str | SkipJsonSchema[None] = Field(
        None, exclude_if=lambda reason: reason is None, description="Why, unless accepted"
    )


class ChainIngest(Wire):
    results: list[LogOutcome]
    accepted: Count
    duplicate: Count
    ignored: Count
    rejected: Count


class RejectedLogs(Wire):
    code: Literal["rejected_logs"]
    message: str


class ChainIngestRejected(ChainIngest):
    error: RejectedLogs


async def _signed(request: web.Request, path: Mapping[str, Any]) -> Principal | None:
    """Let in a request signed with the webhook secret, once; it has no principal."""
    runtime = request.app[RUNTIME]
    secret = runtime.settings.webhook_secret
    if secret is None:
        raise ApiError(503, "webhook_disabled", "set INFTD_WEBHOOK_SECRET to accept chain webhooks")
    body = await request.read()  # the bytes signed; aiohttp keeps them for the handler
    try:
        runtime.replay_guard.check(
            secret.get_secret_value().encode(), dict(request.headers), body, time.time()
        )
    except WebhookError as exc:
        runtime.webhook_counts["requests_refused"] += 1
        raise ApiError(exc.status, exc.code, str(exc)) from None
    return None


SIGNED = Auth(
    ({"webhookSignature": [], "webhookTimestamp": []},),
    {
        401: ("unsigned", "stale", "bad_signature"),
        409: ("replayed",),
        503: ("webhook_disabled",),
    },
    _signed,
)


def _logs(runtime: Runtime, raw: bytes) -> list[dict[str, Any]]:
    """The body's logs, as sent (by wire name, extra fields too), once they are valid."""
    try:
        body = LOGS.validate_json(raw, strict=True)
    except ValidationError as exc:
        runtime.webhook_counts["requests_refused"] += 1
        if any(e["type"] == "too_long" and e["loc"] == ("logs",) for e in exc.errors()):
            raise ApiError(413, "too_many_logs", f"at most {MAX_LOGS} logs per request") from None
        raise validation_error(ChainLogs, exc) from None
    return [log.model_dump(by_alias=True) for log in body.logs]


async def _ingest(runtime: Runtime, logs: list[dict[str, Any]]) -> list[Outcome]:
    """Verify and store the logs; a log the chain cannot look up is the request's fault."""
    try:
        return await runtime.webhooks.ingest(logs)
    except RpcResponseError as exc:  # the node cannot read a field, e.g. a transactionHash
        runtime.webhook_counts["requests_refused"] += 1
        raise ApiError(400, "malformed", f"the chain refused to look a log up: {exc}") from None


def _results(outcomes: list[Outcome]) -> dict[str, Any]:
    results = [
        LogOutcome(
            transaction_hash=o.tx_hash,
            log_index=o.log_index,
            status=o.status,
            reason=o.reason or None,
        )
        for o in outcomes
    ]
    return {"results": results, **{s: sum(o.status == s for o in outcomes) for s in TALLIED}}


@ROUTES.post(
    PATH,
    "chainWebhook",
    "Contract logs pushed by a notifier, each verified against the chain",
    auth=SIGNED,
    body_doc=ChainLogs,
    ok=(
        Answer("Every log accepted, duplicate or ignored", ChainIngest),
        Answer(
            "A log failed verification: nothing of the request is stored",
            ChainIngestRejected,
            status=422,
        ),
    ),
    errors={400: ("malformed",), 413: ("too_many_logs",), 503: ("chain_unavailable",)},
    description=f"Signed with INFTD_WEBHOOK_SECRET over the raw body, the timestamp within "
    f"{REPLAY_WINDOW} s; each signed request is accepted once. Up to {MAX_LOGS} logs: "
    "400 malformed for a log the chain cannot look up, 503 chain_unavailable when the "
    "chain does not answer.",
)
async def chain_webhook(request: web.Request) -> web.StreamResponse | ChainIngest:
    runtime = request.app[RUNTIME]
    outcomes = await _ingest(runtime, _logs(runtime, await request.read()))
    results = _results(outcomes)
    for status in TALLIED:
        runtime.webhook_counts[status] += results[status]
    if results["rejected"]:
        error = RejectedLogs(code="rejected_logs", message="logs failed verification")
        rejected = ChainIngestRejected(error=error, **results)
        return web.Response(body=rejected.to_json(), status=422, content_type="application/json")
    if results["accepted"]:
        runtime.indexer.wake.set()  # sync now rather than at the next poll
    return ChainIngest(**results)


add_routes = ROUTES.add_to
