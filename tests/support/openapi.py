"""The OpenAPI document in tests: checking answers against it, and requests generated from it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

Schema = dict[str, Any]

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
JSON_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
INT64 = (-(2**63), 2**63 - 1)
# What the request generator understands; a request schema using more fails the test.
GENERATED_KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "items",
        "minItems",
        "maxItems",
        "properties",
        "required",
        "additionalProperties",
        "maxProperties",
        "propertyNames",
        "format",
        "description",
        "examples",
        "title",
        "default",
    }
)
MAX_GENERATED_ITEMS = 4  # list and extra-key sizes in generated bodies
MAX_GENERATED_CHARS = 40  # string sizes, unless a pattern asks for more

# Any JSON value orjson can write (its integers stop at 64 bits).
ANY_JSON: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(INT64[0], 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=16),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    template: str  # the path as documented and routed, e.g. /v1/agents/{token_id}
    spec: dict[str, Any]

    def url(self, path_values: dict[str, str]) -> str:
        return self.template.format(**{k: quote(v, safe="") for k, v in path_values.items()})


class Spec:
    """An OpenAPI document: its operations, and whether an answer is one it allows."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.doc = document

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """``node``, or what its ``$ref`` (a local JSON pointer) points at, recursively."""
        while "$ref" in node:
            target: Any = self.doc
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            node = target
        return node

    def operations(self) -> list[Operation]:
        return [
            Operation(method.upper(), path, operation)
            for path, item in self.doc["paths"].items()
            for method, operation in item.items()
            if method in HTTP_METHODS
        ]

    def operation(self, method: str, template: str) -> Operation:
        return Operation(method, template, self.doc["paths"][template][method.lower()])

    def validate(self, instance: Any, schema: Schema) -> None:
        """Assert ``instance`` matches ``schema`` (whose refs point into the document)."""
        root = {**schema, "components": self.doc["components"]}
        errors = [e.message for e in Draft202012Validator(root).iter_errors(instance)]
        assert not errors, f"{errors[:3]} in {orjson.dumps(instance)[:600]!r}"

    def check(self, op: Operation, status: int, media: str, body: bytes) -> None:
        """Assert the operation documents ``status`` and the body matches its schema."""
        where = f"{op.method} {op.template} answered {status}"
        responses = op.spec["responses"]
        assert str(status) in responses, f"{where}, which is not documented: {body[:300]!r}"
        content = self.resolve(responses[str(status)]).get("content")
        if content is None:
            assert body == b"", f"{where} with a body the document does not describe"
            return
        assert media in content, f"{where} as {media}, documented as {list(content)}"
        if media == "application/json":
            self.validate(orjson.loads(body), content[media]["schema"])


class SchemaStrategies:
    """Hypothesis strategies for values of the document's request schemas."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self._by_type: dict[str, Callable[[Schema], st.SearchStrategy[Any]]] = {
            "null": lambda s: st.none(),
            "boolean": lambda s: st.booleans(),
            "integer": self._integer,
            "number": self._number,
            "string": self._string,
            "array": self._array,
            "object": self._object,
        }

    def of(self, schema: Schema) -> st.SearchStrategy[Any]:
        schema = self.spec.resolve(schema)
        unknown = set(schema) - GENERATED_KEYWORDS
        assert not unknown, f"the request generator does not know {sorted(unknown)}"
        if "enum" in schema or "const" in schema:
            return st.sampled_from(schema.get("enum", [schema.get("const")]))
        if "anyOf" in schema or "oneOf" in schema:
            return st.one_of(*(self.of(s) for s in schema.get("anyOf") or schema["oneOf"]))
        types = schema.get("type", JSON_TYPES)
        found = st.one_of(*(self._by_type[t](schema) for t in _as_list(types)))
        if "examples" in schema:
            return st.sampled_from(schema["examples"]) | found
        return found

    def _integer(self, schema: Schema) -> st.SearchStrategy[int]:
        return st.integers(schema.get("minimum", INT64[0]), schema.get("maximum", INT64[1]))

    def _number(self, schema: Schema) -> st.SearchStrategy[Any]:
        floats = st.floats(
            schema.get("minimum"), schema.get("maximum"), allow_nan=False, allow_infinity=False
        )
        return self._integer(schema) | floats

    def _string(self, schema: Schema) -> st.SearchStrategy[str]:
        low, high = schema.get("minLength", 0), schema.get("maxLength", MAX_GENERATED_CHARS)
        if "pattern" in schema:
            pattern: str = schema["pattern"]
            matching = st.from_regex(pattern, fullmatch=True)
            return matching.filter(lambda s: low <= len(s) <= schema.get("maxLength", len(s)))
        return st.text(min_size=low, max_size=max(low, min(high, MAX_GENERATED_CHARS)))

    def _array(self, schema: Schema) -> st.SearchStrategy[list[Any]]:
        low = schema.get("minItems", 0)
        high = min(schema.get("maxItems", MAX_GENERATED_ITEMS), max(low, MAX_GENERATED_ITEMS))
        return st.lists(self.of(schema.get("items", {})), min_size=low, max_size=high)

    def _object(self, schema: Schema) -> st.SearchStrategy[dict[str, Any]]:
        properties = schema.get("properties", {})
        required = set(schema.get("required", ()))
        known = st.fixed_dictionaries(
            {k: self.of(v) for k, v in properties.items() if k in required},
            optional={k: self.of(v) for k, v in properties.items() if k not in required},
        )
        extra = schema.get("additionalProperties", True)
        if extra is False:
            return known
        names = self.of({"type": "string", **schema.get("propertyNames", {})})
        values = ANY_JSON if extra is True else self.of(extra)
        size = min(schema.get("maxProperties", MAX_GENERATED_ITEMS), MAX_GENERATED_ITEMS)
        extras = st.dictionaries(names, values, max_size=size)
        return st.tuples(known, extras).map(lambda pair: {**pair[1], **pair[0]})


def _as_list(types: str | list[str] | tuple[str, ...]) -> list[str]:
    return [types] if isinstance(types, str) else list(types)
