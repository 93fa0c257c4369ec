"""Credits: ``GET /v1/agents/{tokenId}/credits`` (owner), the legacy ``GET /api/credits``,
and ``POST /v1/agents/{tokenId}/credits/adjust`` (operator).

Who sees what. Balances are public: ``GET /v1/agents/{tokenId}`` shows them, and so does the
legacy ``GET /api/credits?tokenId=N`` that the seed's front end calls without credentials.
The ledger is the owner's (and the operator's): its entries carry generation ids, which lead
to prompts and content, the operator's notes, and the time of every use, i.e. the owner's
activity rather than the token's public state. ``GET /v1/agents/{tokenId}/credits`` exists
for the ledger, so it is owner-only as a whole and always has one shape; the balances it
repeats stay public on the other two routes.

Insufficient credits are 409 ``insufficient_credits`` everywhere (``api_error``): the
request is well formed but conflicts with the agent's current balance, and may succeed once
credits are added. 402 is reserved by RFC 9110 and read differently by clients and proxies.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from inftd.agents.credits import MAX_AMOUNT, MAX_KEY_CHARS, adjust
from inftd.agents.errors import (
    AgentError,
    BadCreditRequest,
    InsufficientCredits,
    LimitExceeded,
    OverCommit,
    OverRefund,
    UnknownAgent,
    UnknownReservation,
    UnpricedGeneration,
)
from inftd.agents.ledger import cached_balances, ledger_page
from inftd.agents.owners import MAX_STORED_TOKEN_ID
from inftd.daemon.server.access import require_operator, require_owner
from inftd.daemon.server.api.agents import MAX_TOKEN_DIGITS, token_id_of
from inftd.daemon.server.http import (
    RUNTIME,
    ApiError,
    json_response,
    reach_min_seq,
    read_json,
    versioned_response,
)

LEDGER_PAGE = 50  # entries per page unless ?limit= says otherwise
MAX_LEDGER_PAGE = 200
MAX_ADJUST_NOTE = 500  # characters of an adjustment's note
LEGACY_PATH = "/api/credits"

# Domain refusals as HTTP: (status, code). Usage limits that pass with time are 429.
_STATUS: list[tuple[type[AgentError], int, str]] = [
    (UnknownAgent, 404, "unknown_agent"),
    (InsufficientCredits, 409, "insufficient_credits"),
    (UnknownReservation, 409, "unknown_reservation"),
    (OverCommit, 409, "over_commit"),
    (OverRefund, 409, "over_refund"),
    (BadCreditRequest, 400, "bad_request"),
    (UnpricedGeneration, 400, "unpriced_generation"),
]


def api_error(exc: AgentError) -> ApiError:
    """The API's answer to a refused credits operation or usage check (for every route that
    spends credits, so they all answer alike); its message names the problem."""
    if isinstance(exc, LimitExceeded):
        status = 400 if exc.limit_name == "max_prompt_chars" else 429
        return ApiError(status, "limit_exceeded", str(exc))
    for kind, status, code in _STATUS:
        if isinstance(exc, kind):
            return ApiError(status, code, str(exc))
    raise exc


def _decimal(raw: str, name: str, code: str) -> int:
    # ASCII only: str.isdigit() also takes "²" and other scripts' digits.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_TOKEN_DIGITS:
        raise ApiError(400, code, f"{name} must be an integer in decimal, got {raw!r:.100}")
    return int(raw)


def _page(request: web.Request) -> tuple[int, int | None]:
    """(limit, before) from ``?limit=&before=<entry id>``."""
    limit = LEDGER_PAGE
    if (raw := request.query.get("limit")) is not None:
        limit = _decimal(raw, "limit", "bad_limit")
        if not 1 <= limit <= MAX_LEDGER_PAGE:
            raise ApiError(400, "bad_limit", f"limit must be 1 to {MAX_LEDGER_PAGE}, got {limit}")
    before = None
    if (raw := request.query.get("before")) is not None:
        # Entry ids are BIGINT: a larger cursor is just "from the newest".
        before = min(_decimal(raw, "before", "bad_before"), MAX_STORED_TOKEN_ID)
    return limit, before


async def get_credits(request: web.Request) -> web.Response:
    token_id = token_id_of(request)
    await require_owner(request, token_id)
    limit, before = _page(request)
    async with request.app[RUNTIME].engine.connect() as conn:
        balances = await cached_balances(conn, token_id)
        entries, cursor = await ledger_page(conn, token_id, limit, before)
    return json_response(
        {
            "packageTokenId": token_id,
            **balances.as_json(),
            "ledger": [e.as_json() for e in entries],
            "next": cursor,
        }
    )


async def legacy_credits(request: web.Request) -> web.Response:
    """The seed's ``/api/credits?tokenId=N``, public, with the seed's field names."""
    raw = request.query.get("tokenId")
    if raw is None:
        raise ApiError(400, "bad_token_id", "give the package token as ?tokenId=N")
    token_id = _decimal(raw, "tokenId", "bad_token_id")
    await reach_min_seq(request)
    try:
        entry = await request.app[RUNTIME].live.agent(token_id)
    except UnknownAgent as exc:
        raise api_error(exc) from None
    body = orjson.dumps({"packageTokenId": token_id, **entry.balances.as_json()})
    return versioned_response(request, body, entry.etag)


def _adjustment(body: Any) -> tuple[int, str, str]:
    """(amount, note, idempotency key) of an adjust request, or 400 naming the field."""
    if not isinstance(body, dict):
        raise ApiError(
            400, "bad_request", 'send {"amount": N, "note": "...", "idempotencyKey": "..."}'
        )
    amount, note, key = body.get("amount"), body.get("note"), body.get("idempotencyKey")
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < abs(amount) <= MAX_AMOUNT:
        raise ApiError(
            400, "bad_request", f"amount must be a non-zero integer within ±{MAX_AMOUNT}"
        )
    if not isinstance(note, str) or not 0 < len(note) <= MAX_ADJUST_NOTE or "\x00" in note:
        raise ApiError(
            400, "bad_request", f"note must say why, in 1 to {MAX_ADJUST_NOTE} characters"
        )
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_CHARS or not key.isprintable():
        raise ApiError(
            400, "bad_request", f"idempotencyKey must be 1 to {MAX_KEY_CHARS} printable characters"
        )
    return amount, note, key


async def adjust_credits(request: web.Request) -> web.Response:
    require_operator(request)
    token_id = token_id_of(request)
    amount, note, key = _adjustment(await read_json(request))
    runtime = request.app[RUNTIME]
    try:
        async with runtime.writer.write(token_id) as (conn, agent):
            change = await adjust(conn, agent, amount, key, note)
    except (UnknownAgent, InsufficientCredits, BadCreditRequest) as exc:
        raise api_error(exc) from None
    runtime.hub.poke()
    return json_response(
        {
            "packageTokenId": token_id,
            **change.balances.as_json(),
            "entry": change.entries[0].as_json(),
            "replayed": change.replayed,
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/agents/{token_id}/credits", get_credits)
    app.router.add_post("/v1/agents/{token_id}/credits/adjust", adjust_credits)
    app.router.add_get(LEGACY_PATH, legacy_credits)
