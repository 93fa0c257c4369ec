"""Credits: ``GET /v1/agents/{tokenId}/credits`` (owner), the legacy ``GET /api/credits``,
and ``POST /v1/agents/{tokenId}/credits/adjust`` (operator).

Who sees what. Balances are public: ``GET /v1/agents/{tokenId}`` shows them, and so does the
legacy ``GET /api/credits?tokenId=N`` that the seed's front end calls without credentials.
The ledger is the owner's (and the operator's): its entries carry generation ids, which lead
to prompts and content, the operator's notes, and the time of every use, i.e. the owner's
activity rather than the token's public state. ``GET /v1/agents/{tokenId}/credits`` exists
for the ledger, so it is owner-only as a whole and always has one shape; the balances it
repeats stay public on the other two routes.

Insufficient credits are 409 ``insufficient_credits`` everywhere (``server.errors``): the
request is well formed but conflicts with the agent's current balance, and may succeed once
credits are added. 402 is reserved by RFC 9110 and read differently by clients and proxies.
"""

from __future__ import annotations

from typing import Annotated, Literal

from aiohttp import web
from pydantic import AfterValidator, Field, WithJsonSchema

from inftd.agents.credits import MAX_AMOUNT, MAX_KEY_CHARS, adjust
from inftd.agents.errors import AgentError
from inftd.agents.ledger import Balances, LedgerEntry, cached_balances, ledger_page
from inftd.daemon.server.contract.routes import OPERATOR, OWNER, PUBLIC, Answer, Routes
from inftd.daemon.server.contract.wire import (
    MAX_BIGINT,
    MAX_UINT256,
    UINT256_TEXT,
    Body,
    Code,
    Count,
    NoNul,
    Query,
    Time,
    TokenId,
    Wire,
)
from inftd.daemon.server.errors import answer_for
from inftd.daemon.server.http import RUNTIME, ApiError, versioned_response

ROUTES = Routes("credits", "An agent's credits and their ledger")
CREDITS = "/v1/agents/{token_id}/credits"
LEGACY_PATH = "/api/credits"
LEDGER_PAGE = 50  # entries per page unless ?limit= says otherwise
MAX_LEDGER_PAGE = 200
MAX_ADJUST_NOTE = 500  # characters of an adjustment's note
# inftd.agents.ledger.KINDS, which a test checks this against.
EntryKind = Literal["grant", "topup", "adjust", "reserve", "commit", "release", "refund"]
# C0 and C1 controls and line breaks, which str.isprintable() refuses among others (it also
# refuses format characters, unassigned ones and spaces other than " ").
PRINTABLE = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]+$"


# -- answers --------------------------------------------------------------------------------


class CreditsBalances(Wire):
    """The seed's field names."""

    package_token_id: Count
    total_credits: Count
    used_credits: Count
    reserved_credits: Count
    available_credits: Count


class CreditsLedgerEntry(Wire):
    """For the owner: the idempotency key is left out (it is ours, built from the caller's)."""

    id: Count
    kind: EntryKind
    amount: int = Field(description="Credits; only an adjust may be negative")
    generation_id: str | None
    note: str | None
    created_at: Time


class CreditsLedgerPage(CreditsBalances):
    ledger: list[CreditsLedgerEntry]
    next: Count | None = Field(description="The before= of the next page; null on the last")


class CreditsAdjusted(CreditsBalances):
    entry: CreditsLedgerEntry
    replayed: bool = Field(description="The key had been applied")


def _balances(token_id: int, balances: Balances) -> CreditsBalances:
    return CreditsBalances(
        package_token_id=token_id,
        total_credits=balances.total,
        used_credits=balances.used,
        reserved_credits=balances.reserved,
        available_credits=balances.available,
    )


def _entry(entry: LedgerEntry) -> CreditsLedgerEntry:
    return CreditsLedgerEntry.model_validate(entry, from_attributes=True)


# -- requests -------------------------------------------------------------------------------


EntryId = Annotated[int, Field(ge=1, le=MAX_BIGINT)]  # a BIGINT column


class LedgerQuery(Query):
    limit: Annotated[int, Field(ge=1, le=MAX_LEDGER_PAGE), Code("bad_limit")] = Field(
        LEDGER_PAGE,
        description=f"Entries per page, 1 to {MAX_LEDGER_PAGE} (default {LEDGER_PAGE})",
        examples=[1, LEDGER_PAGE],
    )
    before: Annotated[EntryId | None, Code("bad_before")] = Field(
        None, description="Only entries older than this entry id: the previous page's next"
    )


class LegacyCreditsQuery(Query):
    error_code = "bad_token_id"  # no tokenId at all
    token_id: Annotated[
        int,
        Field(ge=0, le=MAX_UINT256),
        WithJsonSchema({**UINT256_TEXT, "examples": ["1", "2", "0"]}),
        Code("bad_token_id"),
    ] = Field(description="The package token id, a uint256 in decimal")


def _non_zero(amount: int) -> int:
    if amount == 0:
        raise ValueError("must not be 0")
    return amount


def _printable(key: str) -> str:
    if not key.isprintable():
        raise ValueError("must be printable characters")
    return key


class CreditsAdjustment(Body):
    amount: Annotated[
        int,
        Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT),
        AfterValidator(_non_zero),
    ] = Field(description="Credits added (negative: removed); not 0")
    note: Annotated[NoNul, Field(min_length=1, max_length=MAX_ADJUST_NOTE)] = Field(
        description="Why; shown in the owner's ledger"
    )
    idempotency_key: Annotated[
        str,
        Field(min_length=1, max_length=MAX_KEY_CHARS, pattern=PRINTABLE),
        AfterValidator(_printable),
    ] = Field(
        description="Printable characters; the same key again applies nothing",
        examples=["ticket-4711"],
    )


# -- routes ---------------------------------------------------------------------------------


@ROUTES.get(
    CREDITS,
    "getCredits",
    "The agent's balances and its ledger, newest first (owner or operator)",
    auth=OWNER,
    ok=Answer("Balances and a page of the ledger", CreditsLedgerPage),
)
async def get_credits(
    request: web.Request, token_id: TokenId, query: LedgerQuery
) -> CreditsLedgerPage:
    async with request.app[RUNTIME].engine.connect() as conn:
        balances = await cached_balances(conn, token_id)
        entries, cursor = await ledger_page(conn, token_id, query.limit, query.before)
    return CreditsLedgerPage(
        **_balances(token_id, balances).model_dump(),
        ledger=[_entry(e) for e in entries],
        next=cursor,
    )


@ROUTES.get(
    LEGACY_PATH,
    "legacyCredits",
    "The seed's credits route: an agent's balances, public",
    auth=PUBLIC,
    ok=Answer("The balances; the ETag is the agent's version", CreditsBalances),
    versioned=True,
    errors={404: ("unknown_agent",)},
)
async def legacy_credits(request: web.Request, query: LegacyCreditsQuery) -> web.Response:
    """The seed's ``/api/credits?tokenId=N``, with the seed's field names, from the live copy."""
    entry = await request.app[RUNTIME].live.agent(query.token_id)
    body = _balances(query.token_id, entry.balances).to_json()
    return versioned_response(request, body, entry.etag)


@ROUTES.post(
    CREDITS + "/adjust",
    "adjustCredits",
    "Correct the agent's total credits (operator); a key applies once",
    auth=OPERATOR,
    ok=Answer("Adjusted, or the first result again for a key already applied", CreditsAdjusted),
    errors={404: ("unknown_agent",), 409: ("insufficient_credits",)},
)
async def adjust_credits(
    request: web.Request, token_id: TokenId, body: CreditsAdjustment
) -> CreditsAdjusted:
    runtime = request.app[RUNTIME]
    async with runtime.writer.write(token_id) as (conn, agent):
        change = await adjust(conn, agent, body.amount, body.idempotency_key, body.note)
    runtime.hub.poke()
    return CreditsAdjusted(
        **_balances(token_id, change.balances).model_dump(),
        entry=_entry(change.entries[0]),
        replayed=change.replayed,
    )


add_routes = ROUTES.add_to


# -- a shim: api.generations, not yet declared, still builds its refusals ------------------


def api_error(exc: AgentError) -> ApiError:
    """The table's answer to ``exc`` (``server.errors``), for ``api.generations``, which
    still turns refusals into ``ApiError``s itself; re-raised if the table has none."""
    found = answer_for(exc)
    if found is None:
        raise exc
    return ApiError(*found, str(exc))
