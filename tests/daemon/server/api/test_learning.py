"""The learning routes over a real chain, database and server: who may do what (owner,
operator, after a transfer), and bad input answered with a 4xx that changes nothing."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, insert, select

from inftd.daemon.cli.devnet import BUYER, FRIEND, Anvil
from inftd.daemon.server.app import api_document
from inftd.indexer.deployment import Deployment
from inftd.store.models import Agent, Generation, LearningEntry
from tests.support.api import OPERATOR_KEY, OpenApi, bearer, runtime_of, sign_in
from tests.support.contracts import Contracts
from tests.support.openapi import Operation, Spec

SPEC = Spec(api_document())


def operation_of(method: str, path: str) -> Operation:
    """The documented operation serving ``path``."""
    for op in SPEC.operations():
        pattern = re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(op.template))
        if op.method == method and re.fullmatch(pattern, path):
            return op
    raise AssertionError(f"{method} {path} is not documented")


@pytest.fixture
async def client(open_api: OpenApi) -> AsyncIterator[TestClient]:
    """Token 1 bought by BUYER, token 2 by FRIEND, both indexed."""
    async with open_api(BUYER, FRIEND) as client:
        yield client


@pytest.fixture
async def owner(client: TestClient) -> dict[str, str]:
    return bearer(await sign_in(client, BUYER))


@pytest.fixture
async def friend(client: TestClient) -> dict[str, str]:
    return bearer(await sign_in(client, FRIEND))


async def generation(
    client: TestClient, token_id: int = 1, status: str = "succeeded", **values: Any
) -> str:
    """A generation row as the pipeline (issue #6) would leave it."""
    generation_id = str(uuid.uuid4())
    async with runtime_of(client).engine.begin() as conn:
        await conn.execute(
            insert(Generation).values(
                id=generation_id,
                token_id=token_id,
                kind="image",
                prompt="a lighthouse at dusk",
                options=values.pop("options", {"style": "noir"}),
                source="api",
                status=status,
                provider="local",
                **values,
            )
        )
    return generation_id


async def call(
    client: TestClient, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any
) -> tuple[int, Any]:
    """Send a request; its answer must be one the OpenAPI document allows."""
    async with client.request(method, path, headers=headers or {}, **kw) as response:
        raw = await response.read()
        SPEC.check(operation_of(method, path), response.status, response.content_type, raw)
        return response.status, orjson.loads(raw)


def code(body: Any) -> str:
    return str(body["error"]["code"])


async def learned(client: TestClient, token_id: int) -> tuple[int, Any, int]:
    """(entries, evolution, experience) of an agent, straight from the database."""
    async with runtime_of(client).engine.connect() as conn:
        entries = await conn.scalar(
            select(func.count())
            .select_from(LearningEntry)
            .where(LearningEntry.token_id == token_id)
        )
        agent = (await conn.execute(select(Agent).where(Agent.token_id == token_id))).one()
    return int(entries or 0), agent.evolution, agent.experience


def feedback_path(generation_id: str) -> str:
    return f"/v1/generations/{generation_id}/feedback"


# Feedback


async def test_feedback_is_for_the_owner_or_the_operator(
    client: TestClient, owner: dict[str, str], friend: dict[str, str]
) -> None:
    mine = feedback_path(await generation(client))
    rating = {"rating": 5, "tags": ["moody"], "note": "lovely"}
    assert (await call(client, "POST", mine, json=rating))[0] == 401
    status, body = await call(client, "POST", mine, bearer("nope"), json=rating)
    assert (status, code(body)) == (401, "invalid_token")
    status, body = await call(client, "POST", mine, friend, json=rating)
    assert (status, code(body)) == (403, "not_owner")
    assert (await learned(client, 1))[0] == 0

    status, body = await call(client, "POST", mine, owner, json=rating)
    assert status == 201, body
    assert body["entry"]["rating"] == 5
    assert body["entry"]["note"] == "lovely"
    assert body["experience"] == 5
    status, body = await call(client, "POST", mine, owner, json={"rating": 1})
    assert (status, code(body)) == (409, "feedback_exists")

    other = feedback_path(await generation(client))
    assert (await call(client, "POST", other, bearer(OPERATOR_KEY), json={"rating": 4}))[0] == 201
    agent = (await call(client, "GET", "/v1/agents/1"))[1]
    assert [e["rating"] for e in agent["learningData"]] == [4, 5]
    assert agent["experience"] == 10


async def test_feedback_on_what_cannot_be_rated_changes_nothing(
    client: TestClient, owner: dict[str, str]
) -> None:
    good = feedback_path(await generation(client))
    running = feedback_path(await generation(client, status="running"))
    refused: list[tuple[str, Any, int, str]] = [
        (feedback_path(str(uuid.uuid4())), {"rating": 5}, 404, "unknown_generation"),
        (feedback_path("x" * 37), {"rating": 5}, 404, "unknown_generation"),
        (running, {"rating": 5}, 409, "generation_not_succeeded"),
        (good, {"rating": 6}, 400, "bad_feedback"),
        (good, {"rating": 5, "tags": ["x" * 49]}, 400, "bad_feedback"),
        # Longer than a tag before its spaces are collapsed: refused, as documented.
        (good, {"rating": 5, "tags": ["a" + " " * 60 + "b"]}, 400, "bad_feedback"),
        (good, {"rating": 5, "tags": [" "]}, 400, "bad_feedback"),
        (good, {"rating": 5, "note": "n\x00"}, 400, "bad_feedback"),
        (good, [5], 400, "bad_feedback"),
    ]
    before = await learned(client, 1)
    for path, body, status, error in refused:
        got = await call(client, "POST", path, owner, json=body)
        assert (got[0], code(got[1])) == (status, error), (path, body)
    got = await call(client, "POST", good, owner, data=b"{oops")
    assert (got[0], code(got[1])) == (400, "malformed_json")
    assert await learned(client, 1) == before


async def test_after_a_transfer_the_new_owner_rates_and_the_old_cannot(
    client: TestClient,
    owner: dict[str, str],
    friend: dict[str, str],
    chain: Anvil,
    deployment: Deployment,
) -> None:
    path = feedback_path(await generation(client))
    Contracts(chain.url, deployment).transfer(1, FRIEND.address)
    await runtime_of(client).indexer.sync_once()
    status, body = await call(client, "POST", path, owner, json={"rating": 5})
    assert (status, code(body)) == (403, "not_owner")
    assert (await call(client, "POST", path, friend, json={"rating": 5}))[0] == 201
    patch = "/v1/agents/1/preferences"
    assert (await call(client, "PATCH", patch, owner, json={"a": 1}))[0] == 403
    assert (await call(client, "PATCH", patch, friend, json={"a": 1}))[0] == 200


async def test_a_collaborative_generation_teaches_the_collaborator_too(
    client: TestClient, owner: dict[str, str]
) -> None:
    path = feedback_path(await generation(client, collaborator_token_id=2))
    assert (await call(client, "POST", path, owner, json={"rating": 5, "note": "ours"}))[0] == 201
    status, page = await call(client, "GET", "/v1/agents/2/learning")
    assert status == 200
    assert [(e["rating"], e["note"]) for e in page["entries"]] == [(5, None)]
    assert page["evolution"]["styles"] == [{"value": "noir", "weight": 0.5}]


# Preferences patch


async def test_a_merge_patch_sets_and_deletes_keys(
    client: TestClient, owner: dict[str, str], friend: dict[str, str]
) -> None:
    path = "/v1/agents/1/preferences"
    await call(client, "PUT", path, owner, json={"style": "noir", "tone": "dry", "n": 1})
    status, body = await call(client, "PATCH", path, owner, json={"tone": None, "n": 2, "x": True})
    assert status == 200
    assert body == {"packageTokenId": 1, "preferences": {"style": "noir", "n": 2, "x": True}}
    operator = bearer(OPERATOR_KEY)
    assert (await call(client, "PATCH", path, operator, json={"gone": None}))[0] == 200
    assert (await call(client, "PATCH", path, json={"n": 3}))[0] == 401
    assert (await call(client, "PATCH", path, friend, json={"n": 3}))[0] == 403
    assert (await call(client, "PATCH", "/v1/agents/9/preferences", owner, json={}))[0] == 404
    for bad in ([1], {"k": [1]}, {"k": {"deep": 1}}, {"": 1}, {"k": "\x00"}, {"\x00": None}):
        status, body = await call(client, "PATCH", path, owner, json=bad)
        assert (status, code(body)) == (400, "bad_preferences"), bad
    too_many = {f"k{i}": i for i in range(48)}
    assert (await call(client, "PATCH", path, owner, json=too_many))[0] == 400
    shown = (await call(client, "GET", "/v1/agents/1"))[1]["preferences"]
    assert shown == {"style": "noir", "n": 2, "x": True}


# Reset, learning pages


async def test_reset_is_the_owners_and_keeps_experience(
    client: TestClient, owner: dict[str, str], friend: dict[str, str]
) -> None:
    for _ in range(2):
        path = feedback_path(await generation(client))
        await call(client, "POST", path, owner, json={"rating": 5})
    reset = "/v1/agents/1/learning/reset"
    assert (await call(client, "POST", reset))[0] == 401
    assert (await call(client, "POST", reset, friend))[0] == 403
    assert (await call(client, "POST", "/v1/agents/9/learning/reset", owner))[0] == 404
    assert (await call(client, "GET", "/v1/agents/1/learning"))[1]["evolution"]["styles"] != []
    status, body = await call(client, "POST", reset, owner)
    assert status == 200
    assert body["experience"] == 10
    assert body["evolution"]["styles"] == []
    page = (await call(client, "GET", "/v1/agents/1/learning"))[1]
    assert (page["entries"], page["experience"], page["level"]) == ([], 10, 1)
    assert (await learned(client, 1))[0] == 2  # hidden, not deleted


async def test_learning_pages_are_public_and_go_backwards(
    client: TestClient, owner: dict[str, str]
) -> None:
    for rating in (1, 2, 3, 4, 5):
        path = feedback_path(await generation(client))
        await call(client, "POST", path, owner, json={"rating": rating})
    status, first = await call(client, "GET", "/v1/agents/1/learning", params={"limit": "2"})
    assert status == 200
    assert [e["rating"] for e in first["entries"]] == [5, 4]
    params = {"limit": "10", "before": str(first["nextBefore"])}
    rest = (await call(client, "GET", "/v1/agents/1/learning", params=params))[1]
    assert [e["rating"] for e in rest["entries"]] == [3, 2, 1]
    assert rest["nextBefore"] is None
    assert first["nextLevelAt"] == 50
    refused = (
        ({"limit": "0"}, "bad_limit"),
        ({"limit": "101"}, "bad_limit"),
        ({"limit": " 1"}, "bad_limit"),
        ({"before": "x"}, "bad_before"),
        ({"before": str(2**63)}, "bad_before"),
    )
    for params, error in refused:
        status, body = await call(client, "GET", "/v1/agents/1/learning", params=params)
        assert (status, code(body)) == (400, error)
    assert (await call(client, "GET", "/v1/agents/9/learning"))[0] == 404
    assert (await call(client, "GET", f"/v1/agents/{2**70}/learning"))[0] == 404


# Sharing and influences


async def test_sharing_and_influences_are_the_owners(
    client: TestClient, owner: dict[str, str], friend: dict[str, str]
) -> None:
    sharing, influences = "/v1/agents/1/sharing", "/v1/agents/1/influences"
    status, body = await call(client, "GET", influences, owner)
    assert status == 200
    assert (body["shareLearning"], body["shared"]) == (False, None)
    assert (await call(client, "GET", influences))[0] == 401
    assert (await call(client, "GET", influences, friend))[0] == 403
    assert (await call(client, "PUT", sharing, friend, json={"shareLearning": True}))[0] == 403
    for bad in ({}, {"shareLearning": 1}, {"shareLearning": True, "x": 1}, [True]):
        status, body = await call(client, "PUT", sharing, owner, json=bad)
        assert (status, code(body)) == (400, "bad_request")
    assert (await call(client, "GET", influences, owner))[1]["shareLearning"] is False

    status, body = await call(client, "PUT", sharing, owner, json={"shareLearning": True})
    assert (status, body["shareLearning"]) == (200, True)
    body = (await call(client, "GET", influences, bearer(OPERATOR_KEY)))[1]
    assert (body["shareLearning"], body["shared"]) == (True, [])


async def test_influences_come_from_the_collection_after_feedback(
    client: TestClient, owner: dict[str, str], friend: dict[str, str]
) -> None:
    for _ in range(2):
        path = feedback_path(await generation(client, token_id=2, options={"style": "ink"}))
        assert (await call(client, "POST", path, friend, json={"rating": 5}))[0] == 201
    path = feedback_path(await generation(client, options={"style": "noir"}))
    assert (await call(client, "POST", path, owner, json={"rating": 3}))[0] == 201
    agent = (await call(client, "GET", "/v1/agents/1"))[1]
    assert agent["collectionInfluences"] == ["ink"]  # refreshed after its feedback
    body = (await call(client, "GET", "/v1/agents/1/influences", owner))[1]
    assert body["collection"] == [{"style": "ink", "score": 1.0, "agents": 1}]
