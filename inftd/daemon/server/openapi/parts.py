"""Builders shared by the sections of the OpenAPI document."""

from __future__ import annotations

from typing import Any

from inftd.daemon.server.contract.common import answer, error, ref

Schema = dict[str, Any]
__all__ = ["answer", "error", "ref"]

# Owner routes: the agent's current owner (sign-in token) or the operator (API key).
OWNER: list[dict[str, list[str]]] = [{"signIn": []}, {"operatorKey": []}]
ADDRESS = "^0x[0-9a-fA-F]{40}$"
HEX = "^0x[0-9a-fA-F]*$"
INT = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
STRING = {"type": "string"}
TIME = {"type": "string", "format": "date-time"}
BAD_BODY = ("malformed_json", "bad_request")  # read_json, then a body of the wrong shape


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: dict[str, Schema], *optional: str) -> Schema:
    """A closed object: every property required unless named in ``optional``."""
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": properties,
        "additionalProperties": False,
    }


def counts(description: str) -> Schema:
    return {"type": "object", "additionalProperties": COUNT, "description": description}


# Reads from the live agents: a version to revalidate with, and a seq to wait for.
VERSIONED_READ = [ref("MinSeq", "parameters"), ref("IfNoneMatch", "parameters")]


def versioned(description: str, schema: Schema, etag: str) -> dict[str, Any]:
    """The answers of a read with an ETag (``etag`` says what it names): 200, and 304."""
    ok = answer(description, schema)
    ok["headers"]["ETag"] = {"description": etag, "schema": STRING}
    ok["headers"]["Cache-Control"] = {"schema": {"const": "no-cache"}}
    return {
        "200": ok,
        "304": ref("NotModified", "responses"),
        "400": error("minSeq is not a seq in decimal", "bad_min_seq"),
    }


def operation(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Any],
    *,
    limited: bool = True,
    **fields: Any,
) -> Any:
    """An operation; every one may fail with 500 or 503 (busy), all but the exempt ones with 429."""
    answers = dict(responses)
    if limited:
        answers["429"] = ref("RateLimited", "responses")
    answers["500"] = ref("InternalError", "responses")
    answers.setdefault("503", ref("Busy", "responses"))
    return {
        "operationId": operation_id,
        "tags": [tag],
        "summary": summary,
        **fields,
        "responses": dict(sorted(answers.items())),
    }


def json_body(schema: Schema, description: str) -> Any:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": schema}},
    }
