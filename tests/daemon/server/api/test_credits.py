"""The credits routes over a bought and indexed Starter package (100 credits): who may read
the ledger and adjust, paging, bad input (400, nothing changed), the legacy route, and the
answers' bytes read back by their models (so the models cannot drift from them)."""

from __future__ import annotations

import re
import typing
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from inftd.agents import credits
from inftd.agents.errors import (
    AgentError,
    BadCreditRequest,
    InsufficientCredits,
    LimitExceeded,
    OverCommit,
    UnknownAgent,
    UnpricedGeneration,
)
from inftd.agents.ledger import KINDS
from inftd.daemon.cli.devnet import BUYER, FRIEND
from inftd.daemon.server.api.credits import (
    MAX_ADJUST_NOTE,
    CreditsAdjusted,
    CreditsBalances,
    CreditsLedgerPage,
    EntryKind,
    api_error,
)
from inftd.daemon.server.app import api_document
from inftd.daemon.server.contract.wire import Wire
from inftd.daemon.server.errors import answer_for
from inftd.store.models import EventRecord
from tests.support.api import OPERATOR_KEY, OpenApi, bearer, runtime_of, sign_in
from tests.support.openapi import Operation, Spec

Client = TestClient[web.Request, web.Application]
SPEC = Spec(api_document())
OPERATOR = bearer(OPERATOR_KEY)
CREDITS = "/v1/agents/1/credits"
ADJUST = "/v1/agents/1/credits/adjust"
STARTER = {"totalCredits": 100, "usedCredits": 0, "reservedCredits": 0, "availableCredits": 100}


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[Client]:
    async with open_api(BUYER) as client:
        yield client


@pytest.fixture
async def owner(client: Client) -> dict[str, str]:
    return bearer(await sign_in(client, BUYER))


def documented(method: str, path: str) -> Operation:
    """The operation of the OpenAPI document that serves ``path``."""
    template = re.sub(r"^/v1/agents/[^/]+/", "/v1/agents/{token_id}/", path)
    return SPEC.operation(method, template)


async def call(client: Client, method: str, path: str, status: int, **kwargs: Any) -> Any:
    """The JSON answer, checked to have ``status`` and to be what the document says."""
    async with client.request(method, path, **kwargs) as response:
        raw = await response.read()
        assert response.status == status, raw
        SPEC.check(documented(method, path), status, response.content_type, raw)
        return orjson.loads(raw)


async def get(client: Client, path: str, status: int, **kwargs: Any) -> Any:
    return await call(client, "GET", path, status, **kwargs)


async def post(client: Client, path: str, status: int, **kwargs: Any) -> Any:
    return await call(client, "POST", path, status, **kwargs)


async def spend(client: Client, amount: int, key: str, generation: str | None = None) -> None:
    async with runtime_of(client).writer.write(1) as (conn, agent):
        await credits.spend(conn, agent, amount, key, generation)


async def test_the_owner_reads_balances_and_the_ledger_newest_first(
    client: Client, owner: dict[str, str]
) -> None:
    body = await get(client, CREDITS, 200, headers=owner)
    assert body == {
        "packageTokenId": 1,
        **STARTER,
        "ledger": [
            {
                "id": body["ledger"][0]["id"],
                "kind": "grant",
                "amount": 100,
                "generationId": None,
                "note": None,
                "createdAt": body["ledger"][0]["createdAt"],
            }
        ],
        "next": None,
    }
    await spend(client, 3, "a", "gen-a")
    await spend(client, 4, "b", "gen-b")
    first = await get(client, CREDITS, 200, headers=owner, params={"limit": "3"})
    assert (first["usedCredits"], first["availableCredits"]) == (7, 93)
    assert [(e["kind"], e["amount"], e["generationId"]) for e in first["ledger"]] == [
        ("commit", 4, "gen-b"),
        ("reserve", 4, "gen-b"),
        ("commit", 3, "gen-a"),
    ]
    rest = await get(client, CREDITS, 200, headers=owner, params={"before": str(first["next"])})
    assert [e["kind"] for e in rest["ledger"]] == ["reserve", "grant"]
    assert rest["next"] is None


async def test_the_ledger_is_the_owners_and_the_operators(
    client: Client, owner: dict[str, str]
) -> None:
    assert (await get(client, CREDITS, 401))["error"]["code"] == "unauthenticated"
    assert (await get(client, CREDITS, 401, headers=bearer("nope")))["error"]["code"] == (
        "invalid_token"
    )
    friend = bearer(await sign_in(client, FRIEND))
    assert (await get(client, CREDITS, 403, headers=friend))["error"]["code"] == "not_owner"
    assert (await get(client, CREDITS, 200, headers=owner))["totalCredits"] == 100
    assert (await get(client, CREDITS, 200, headers=OPERATOR))["totalCredits"] == 100
    for missing in ("2", str(2**256 - 1)):
        body = await get(client, f"/v1/agents/{missing}/credits", 404, headers=OPERATOR)
        assert body["error"]["code"] == "unknown_agent"
    body = await get(client, "/v1/agents/x1/credits", 400, headers=OPERATOR)
    assert body["error"]["code"] == "bad_token_id"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "0"}, "bad_limit"),
        ({"limit": "201"}, "bad_limit"),
        ({"limit": "ten"}, "bad_limit"),
        ({"limit": "²"}, "bad_limit"),
        ({"limit": "-1"}, "bad_limit"),
        ({"before": "x"}, "bad_before"),
        ({"before": "9" * 80}, "bad_before"),
    ],
)
async def test_bad_paging_is_a_400(
    client: Client, owner: dict[str, str], params: dict[str, str], code: str
) -> None:
    body = await get(client, CREDITS, 400, headers=owner, params=params)
    assert body["error"]["code"] == code


@pytest.mark.parametrize("before", ["0", str(2**63), str(2**70)])
async def test_a_cursor_that_is_no_entry_id_is_a_400(
    client: Client, owner: dict[str, str], before: str
) -> None:
    """Entry ids are BIGINT from 1: a cursor outside them was read as "from the newest"
    (or named nothing) and is refused now, as the document says."""
    body = await get(client, CREDITS, 400, headers=owner, params={"before": before})
    assert body["error"]["code"] == "bad_before"


async def test_the_largest_cursor_starts_from_the_newest(
    client: Client, owner: dict[str, str]
) -> None:
    body = await get(client, CREDITS, 200, headers=owner, params={"before": str(2**63 - 1)})
    assert [e["kind"] for e in body["ledger"]] == ["grant"]


async def test_the_legacy_route_gives_the_balances_to_anyone(client: Client) -> None:
    assert await get(client, "/api/credits", 200, params={"tokenId": "1"}) == {
        "packageTokenId": 1,
        **STARTER,
    }
    await spend(client, 5, "x")
    body = await get(client, "/api/credits", 200, params={"tokenId": "1"})
    assert (body["usedCredits"], body["availableCredits"]) == (5, 95)
    for params in ({}, {"tokenId": "one"}, {"tokenId": "1.0"}, {"tokenId": ""}):
        body = await get(client, "/api/credits", 400, params=params)
        assert body["error"]["code"] == "bad_token_id"
    for missing in ("2", str(2**256 - 1)):
        body = await get(client, "/api/credits", 404, params={"tokenId": missing})
        assert body["error"]["code"] == "unknown_agent"
    for beyond in (str(2**256), "9" * 78):  # not a uint256: no token (was a 404)
        body = await get(client, "/api/credits", 400, params={"tokenId": beyond})
        assert body["error"]["code"] == "bad_token_id"


async def test_the_operator_adjusts_once_per_key(client: Client, owner: dict[str, str]) -> None:
    request = {"amount": 25, "note": "support ticket 4711", "idempotencyKey": "t-4711"}
    body = await post(client, ADJUST, 200, json=request, headers=OPERATOR)
    assert (body["totalCredits"], body["availableCredits"], body["replayed"]) == (125, 125, False)
    assert (body["entry"]["kind"], body["entry"]["amount"]) == ("adjust", 25)
    again = await post(client, ADJUST, 200, json=request, headers=OPERATOR)
    assert again["replayed"] is True
    assert again["entry"] == body["entry"]
    assert again["totalCredits"] == 125
    ledger = (await get(client, CREDITS, 200, headers=owner))["ledger"]
    assert [(e["kind"], e["amount"], e["note"]) for e in ledger] == [
        ("adjust", 25, "support ticket 4711"),
        ("grant", 100, None),
    ]
    cut = {"amount": -120, "note": "claw back", "idempotencyKey": "t-4712"}
    assert (await post(client, ADJUST, 200, json=cut, headers=OPERATOR))["totalCredits"] == 5


async def test_an_adjustment_is_published_as_credits_changed(client: Client) -> None:
    request = {"amount": -10, "note": "refund on chain", "idempotencyKey": "k"}
    await post(client, ADJUST, 200, json=request, headers=OPERATOR)
    async with runtime_of(client).engine.connect() as conn:
        payload = await conn.scalar(
            select(EventRecord.payload)
            .where(EventRecord.type == "credits.changed", EventRecord.token_id == 1)
            .order_by(EventRecord.seq.desc())
        )
    assert payload == {
        "kind": "adjust",
        "amount": -10,
        "totalCredits": 90,
        "usedCredits": 0,
        "reservedCredits": 0,
        "availableCredits": 90,
    }


async def test_only_the_operator_adjusts(client: Client, owner: dict[str, str]) -> None:
    request = {"amount": 1000, "note": "mine", "idempotencyKey": "k"}
    body = await post(client, ADJUST, 401, json=request)
    assert body["error"]["code"] == "unauthenticated"
    body = await post(client, ADJUST, 403, json=request, headers=owner)
    assert body["error"]["code"] == "not_operator"
    body = await post(client, "/v1/agents/2/credits/adjust", 404, json=request, headers=OPERATOR)
    assert body["error"]["code"] == "unknown_agent"
    assert await get(client, "/api/credits", 200, params={"tokenId": "1"}) == {
        "packageTokenId": 1,
        **STARTER,
    }


GOOD = {"amount": 5, "note": "why", "idempotencyKey": "k"}


@pytest.mark.parametrize(
    ("body", "code", "names"),
    [
        (b"{nope", "malformed_json", "JSON"),
        (b"[1]", "bad_request", "object"),
        ({**GOOD, "amount": 0}, "bad_request", "amount"),
        ({**GOOD, "amount": 1.5}, "bad_request", "amount"),
        ({**GOOD, "amount": "5"}, "bad_request", "amount"),
        ({**GOOD, "amount": True}, "bad_request", "amount"),
        ({**GOOD, "amount": 10**13}, "bad_request", "amount"),
        ({"amount": 5, "idempotencyKey": "k"}, "bad_request", "note"),
        ({**GOOD, "note": ""}, "bad_request", "note"),
        ({**GOOD, "note": "x" * (MAX_ADJUST_NOTE + 1)}, "bad_request", "note"),
        ({**GOOD, "note": "a\x00b"}, "bad_request", "note"),
        ({"amount": 5, "note": "why"}, "bad_request", "idempotencyKey"),
        ({**GOOD, "idempotencyKey": ""}, "bad_request", "idempotencyKey"),
        ({**GOOD, "idempotencyKey": "k" * 129}, "bad_request", "idempotencyKey"),
        ({**GOOD, "idempotencyKey": "a\nb"}, "bad_request", "idempotencyKey"),
        ({**GOOD, "idempotencyKey": "a\u200bb"}, "bad_request", "idempotencyKey"),
        ({**GOOD, "amount": -101}, "insufficient_credits", "needs 101 credits, has 100"),
    ],
)
async def test_bad_adjustments_are_refused_and_change_nothing(
    client: Client, owner: dict[str, str], body: Any, code: str, names: str
) -> None:
    sent = {"data": body} if isinstance(body, bytes) else {"json": body}
    status = 409 if code == "insufficient_credits" else 400
    refused = await post(client, ADJUST, status, headers=OPERATOR, **sent)
    assert refused["error"]["code"] == code
    assert names in refused["error"]["message"]
    after = await get(client, CREDITS, 200, headers=owner)
    assert (after["totalCredits"], len(after["ledger"])) == (100, 1)


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InsufficientCredits(1, 5, 2), 409, "insufficient_credits"),
        (OverCommit(1, "k", 3, 2), 409, "over_commit"),
        (UnknownAgent(9), 404, "unknown_agent"),
        (BadCreditRequest("amount must be ..."), 400, "bad_request"),
        (UnpricedGeneration("video", "high"), 400, "unpriced_generation"),
        (LimitExceeded("max_prompt_chars", 2000, 2001), 400, "limit_exceeded"),
        (LimitExceeded("max_concurrent_jobs", 2, 3), 429, "limit_exceeded"),
        (LimitExceeded("daily_credit_cap", 200, 205), 429, "limit_exceeded"),
    ],
)
def test_refusals_map_to_one_status_each(error: AgentError, status: int, code: str) -> None:
    """The error table's answers, which api_error (left for api.generations) gives too."""
    assert answer_for(error) == (status, code)
    answer = api_error(error)
    assert (answer.status, answer.code, answer.message) == (status, code, str(error))
    if isinstance(error, LimitExceeded):
        assert error.limit_name in answer.message


def test_api_error_leaves_what_the_table_does_not_know() -> None:
    with pytest.raises(AgentError, match="odd"):
        api_error(AgentError("odd"))


def test_the_ledger_kinds_of_the_answers_are_the_ledgers() -> None:
    assert typing.get_args(EntryKind) == KINDS


async def read_as(client: Client, model: type[Wire], method: str, path: str, **kwargs: Any) -> Any:
    """The answer's bytes, read by ``model`` (closed: a field added or renamed fails)."""
    async with client.request(method, path, **kwargs) as response:
        assert response.status == 200, await response.read()
        return model.model_validate_json(await response.read())


async def test_real_answers_are_the_models(client: Client, owner: dict[str, str]) -> None:
    await spend(client, 3, "a", "gen-a")
    page = await read_as(client, CreditsLedgerPage, "GET", CREDITS, headers=owner)
    assert [e.kind for e in page.ledger] == ["commit", "reserve", "grant"]
    assert (page.package_token_id, page.used_credits, page.next) == (1, 3, None)
    legacy = await read_as(client, CreditsBalances, "GET", "/api/credits?tokenId=1")
    assert (legacy.total_credits, legacy.available_credits) == (100, 97)
    request = {"amount": 2, "note": "n", "idempotencyKey": "m"}
    adjusted = await read_as(
        client, CreditsAdjusted, "POST", ADJUST, json=request, headers=OPERATOR
    )
    assert (adjusted.entry.kind, adjusted.entry.note, adjusted.total_credits) == (
        "adjust",
        "n",
        102,
    )
