"""State sync on request: ``POST /v1/agents/{tokenId}/state-sync`` (owner or operator).

The agent's snapshot is taken and stored, and its hash sent with ``setAgentMetadata``
unless the chain has it already (``inftd.daemon.relayer.statesync``). 202: the transaction
is with the node, not mined; ``outcome`` says whether one was sent. 409 when the daemon
runs without ``relayer.state_sync`` or ``INFTD_OPERATOR_KEY``. The periodic loop of
``relayer.state_sync`` lives with the app (``cleanup_ctx``) and shares its one sender.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from inftd.agents.errors import UnknownAgent
from inftd.daemon.relayer.statesync import (
    StateSync,
    StateSyncError,
    Synced,
    operator_account,
    state_sync_loop,
)
from inftd.daemon.server.access import require_owner
from inftd.daemon.server.api.agents import MAX_STORED_TOKEN_ID, token_id_of
from inftd.daemon.server.http import RUNTIME, ApiError, json_response
from inftd.indexer.rpc import RpcError

PATH = "/v1/agents/{token_id}/state-sync"
STATE_SYNC = web.AppKey("state_sync", StateSync)


def synced_json(synced: Synced) -> dict[str, Any]:
    return {
        "packageTokenId": synced.token_id,
        "stateHash": synced.state_hash,
        "uri": synced.uri,
        "outcome": synced.outcome.value,
        "txHash": synced.tx_hash,
    }


async def post_state_sync(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    if token_id > MAX_STORED_TOKEN_ID:
        raise ApiError(404, "unknown_agent", str(UnknownAgent(token_id)))
    await require_owner(request, token_id)
    syncer = request.app.get(STATE_SYNC)
    if syncer is None or not request.app[RUNTIME].settings.relayer.state_sync:
        raise ApiError(409, "state_sync_off", "state sync is off on this daemon")
    try:
        synced = await syncer.sync(token_id)
    except UnknownAgent as exc:
        raise ApiError(404, "unknown_agent", str(exc)) from None
    except StateSyncError as exc:
        raise ApiError(502, "state_sync_failed", str(exc)) from None
    except RpcError as exc:
        raise ApiError(503, "chain_unavailable", f"the chain did not answer: {exc}") from None
    return json_response(synced_json(synced), status=202)


def add_routes(app: web.Application) -> None:
    app.router.add_post(PATH, post_state_sync)
    runtime = app.get(RUNTIME)
    if runtime is None:  # an app built only to describe the routes
        return
    account = operator_account(runtime)
    syncer = StateSync(runtime, account) if account is not None else None
    if syncer is not None:
        app[STATE_SYNC] = syncer

    async def loop(_: web.Application) -> Any:
        async with state_sync_loop(syncer):
            yield

    app.cleanup_ctx.append(loop)
