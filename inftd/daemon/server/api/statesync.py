"""State sync on request: ``POST /v1/agents/{tokenId}/state-sync`` (owner or operator).

The agent's snapshot is taken and stored, and its hash sent with ``setAgentMetadata``
unless the chain has it already (``inftd.daemon.relayer.statesync``). 202: the transaction
is with the node, not mined; ``outcome`` says whether one was sent. 409 when the daemon
runs without ``relayer.state_sync`` or ``INFTD_OPERATOR_KEY``. The periodic loop of
``relayer.state_sync`` lives with the app (``cleanup_ctx``) and shares its one sender.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from inftd.daemon.relayer.statesync import Outcome, StateSync, operator_account, state_sync_loop
from inftd.daemon.server.contract.routes import OWNER, Answer, Routes
from inftd.daemon.server.contract.wire import Count, TokenId, Wire
from inftd.daemon.server.http import RUNTIME, ApiError

ROUTES = Routes(
    "state-sync",
    "Agent state on chain: a canonical snapshot's keccak256 published with "
    "setAgentMetadata, the snapshot served at its URI",
)
PATH = "/v1/agents/{token_id}/state-sync"
STATE_SYNC = web.AppKey("state_sync", StateSync)
Hash = Annotated[str, Field(pattern="^0x[0-9a-f]{64}$")]


class StateSynced(Wire):
    package_token_id: Count
    state_hash: Hash = Field(description="keccak256 of the snapshot's bytes")
    uri: str = Field(description="Serves the snapshot (canonical JSON)")
    outcome: Outcome
    tx_hash: Hash | None


@ROUTES.post(
    PATH,
    "syncAgentState",
    "Write the hash of the agent's state snapshot on chain with setAgentMetadata "
    "(owner or operator); the snapshot is served at the returned URI",
    auth=OWNER,
    ok=Answer(
        "The snapshot is stored; its hash was sent, is on chain already, or waits for "
        "the key's pending transaction (outcome)",
        StateSynced,
        status=202,
    ),
    errors={
        409: ("state_sync_off",),
        502: ("state_sync_failed",),
        503: ("chain_unavailable",),
    },
    description="409 state_sync_off: the daemon runs without relayer.state_sync or "
    "INFTD_OPERATOR_KEY. 502: the contract or the node refused the transaction; 503 "
    "chain_unavailable: the chain did not answer.",
)
async def post_state_sync(request: web.Request, token_id: TokenId) -> StateSynced:
    syncer = request.app.get(STATE_SYNC)
    if syncer is None or not request.app[RUNTIME].settings.relayer.state_sync:
        raise ApiError(409, "state_sync_off", "state sync is off on this daemon")
    synced = await syncer.sync(token_id)
    return StateSynced(
        package_token_id=synced.token_id,
        state_hash=synced.state_hash,
        uri=synced.uri,
        outcome=synced.outcome,
        tx_hash=synced.tx_hash,
    )


def add_routes(app: web.Application) -> None:
    ROUTES.add_to(app)
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
