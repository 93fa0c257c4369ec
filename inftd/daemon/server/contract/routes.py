"""Routes declared at their handlers: what a route takes, who may call it, what it answers.

    ROUTES = Routes("memory", "An agent's memories")

    @ROUTES.post(
        "/v1/agents/{token_id}/memories", "addMemory", "Add a note to the agent's memory",
        auth=OWNER, ok=Answer("Stored", MemoryItem, status=201),
        errors={502: ("embedding_failed",)},
    )
    async def post_memory(request: web.Request, token_id: TokenId, body: Note) -> MemoryItem: ...

The handler's parameters say what it takes: ``query`` (a ``Query`` model), ``body`` (a
``Body`` model or any annotated type), ``principal`` (who asks, once ``auth`` let them in)
and the path values by name (annotated types such as ``TokenId``). A handler that needs
the raw bytes first (a signature over them) takes no ``body``: ``body_doc=Model``
documents the body, which the handler validates itself when it may (``validation_error``
gives the codes the document lists). The decorator leaves the function as it is and
records the aiohttp handler that parses those, checks ``auth``, and writes a returned
``Wire`` model as JSON; ``Routes.add_to`` serves them and lists them in ``app[CONTRACT]``,
from which the OpenAPI document is built.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from inftd.daemon.auth.tokens import Principal
from inftd.daemon.server.access import require_operator, require_owner, require_signed_in
from inftd.daemon.server.contract.wire import Code, PathValue, Wire
from inftd.daemon.server.http import ApiError, reach_min_seq

Errors = Mapping[int, tuple[str, ...]]  # status -> the error codes it may carry
Endpoint = Callable[[web.Request], Awaitable[web.StreamResponse]]
F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
CONTRACT = web.AppKey("contract", dict[tuple[str, str], "Route"])  # (method, path) -> route
TAGS = web.AppKey("tags", dict[str, str])  # tag name -> description, of declared routes
UNAUTHORIZED = ("unauthenticated", "invalid_token", "token_expired")
INJECTED = frozenset({"request", "query", "body", "principal"})


@dataclass(frozen=True)
class Answer:
    """One documented answer; ``model`` is any type pydantic describes, None for no body.
    Answers of one status in several media types are one answer of the document."""

    description: str
    model: Any = None
    status: int = 200
    media: str = "application/json"
    headers: Mapping[str, Any] = field(default_factory=dict)  # OpenAPI header objects
    links: Mapping[str, Any] = field(default_factory=dict)  # OpenAPI link objects
    extensions: Mapping[str, Any] = field(default_factory=dict)  # "x-..." keys of the answer


Admit = Callable[[web.Request, Mapping[str, Any]], Awaitable[Principal | None]]


async def _public(request: web.Request, path: Mapping[str, Any]) -> Principal | None:
    return None


async def _signed_in(request: web.Request, path: Mapping[str, Any]) -> Principal | None:
    return require_signed_in(request)


async def _operator(request: web.Request, path: Mapping[str, Any]) -> Principal | None:
    return require_operator(request)


async def _owner(request: web.Request, path: Mapping[str, Any]) -> Principal | None:
    return await require_owner(request, path["token_id"])


@dataclass(frozen=True)
class Auth:
    """Who may call a route: its OpenAPI security, the refusals it adds, and the check."""

    security: tuple[Mapping[str, list[str]], ...]
    errors: Errors
    admit: Admit


PUBLIC = Auth((), {}, _public)
SIGNED_IN = Auth(({"signIn": []}, {"operatorKey": []}), {401: UNAUTHORIZED}, _signed_in)
OPERATOR = Auth(({"operatorKey": []},), {401: UNAUTHORIZED, 403: ("not_operator",)}, _operator)
# The agent's current owner (a sign-in token) or the operator; the path names the agent.
OWNER = Auth(
    ({"signIn": []}, {"operatorKey": []}),
    {401: UNAUTHORIZED, 403: ("not_owner",), 404: ("unknown_agent",)},
    _owner,
)


@dataclass(frozen=True)
class PathParam:
    name: str
    kind: Any  # its annotated type
    adapter: TypeAdapter[Any]
    meta: PathValue


@dataclass(frozen=True)
class Route:
    """Everything the document says of one operation, and what the handler is given."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    auth: Auth
    answers: tuple[Answer, ...]
    errors: Errors  # the route's own; the document adds those of auth, parameters and body
    path_params: tuple[PathParam, ...]
    query: type[BaseModel] | None
    body: Any  # the body's type, or None
    body_doc: Any  # the type of a body the handler reads itself (a signed one), or None
    wants_principal: bool
    versioned: bool  # an ETag and ?minSeq= (inftd.agents.live)
    limited: bool  # rate limited (429)
    description: str | None
    parameters: tuple[Mapping[str, Any], ...]  # more documented parameters (headers)

    def success(self) -> int:
        return self.answers[0].status

    def documented_body(self) -> Any:
        """The body's type as the document gives it, whoever parses it."""
        return self.body if self.body is not None else self.body_doc


def field_code(model: type[BaseModel], wire_name: Any) -> str:
    """The error code of a bad value of the field ``wire_name``, else the model's."""
    for name, info in model.model_fields.items():
        if wire_name in (name, info.alias):
            codes = [meta.code for meta in info.metadata if isinstance(meta, Code)]
            return codes[0] if codes else _model_code(model)
    return _model_code(model)


def _model_code(model: Any) -> str:
    return str(getattr(model, "error_code", "bad_request"))


def _type_code(kind: Any) -> str:
    """The error code an annotated body type names (``Annotated[..., Code(...)]``)."""
    for meta in getattr(kind, "__metadata__", ()):
        if isinstance(meta, Code):
            return meta.code
    return "bad_request"


def validation_error(kind: Any, exc: ValidationError) -> ApiError:
    """A 400 naming the first problem, with the code of the field it is in."""
    first = exc.errors(include_url=False)[0]
    loc = first["loc"]
    where = ".".join(str(part) for part in loc)
    message = f"{where}: {first['msg']}" if where else str(first["msg"])
    if first["type"] == "json_invalid":
        return ApiError(400, "malformed_json", f"body is not JSON: {first['msg']}")
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        shape_only = first["type"] in ("missing", "extra_forbidden") or not loc
        code = _model_code(kind) if shape_only else field_code(kind, loc[0])
    else:
        code = _type_code(kind)
    return ApiError(400, code, message)


def _path_value(request: web.Request, param: PathParam) -> Any:
    raw = request.match_info[param.name]
    try:
        return param.adapter.validate_python(raw)
    except ValidationError as exc:
        reason = exc.errors(include_url=False)[0]["msg"]
        message = f"{param.name}: {reason} (got {raw!r})"
        raise ApiError(param.meta.status, param.meta.code, message) from None


async def _arguments(
    route: Route, adapters: Mapping[str, TypeAdapter[Any]], request: web.Request
) -> dict[str, Any]:
    """The handler's arguments, in the order a request is refused: path, who, query, body."""
    path = {param.name: _path_value(request, param) for param in route.path_params}
    principal = await route.auth.admit(request, path)
    args: dict[str, Any] = dict(path)
    if route.query is not None:
        try:
            args["query"] = adapters["query"].validate_python(dict(request.query))
        except ValidationError as exc:
            raise validation_error(route.query, exc) from None
    if route.versioned:
        await reach_min_seq(request)
    if route.body is not None:
        try:
            args["body"] = adapters["body"].validate_json(await request.read(), strict=True)
        except ValidationError as exc:
            raise validation_error(route.body, exc) from None
    if route.wants_principal:
        args["principal"] = principal
    return args


def endpoint(route: Route, handler: Callable[..., Awaitable[Any]]) -> Endpoint:
    """The aiohttp handler of ``route``: parses and checks, calls, writes the answer."""
    adapters: dict[str, TypeAdapter[Any]] = {}
    if route.query is not None:
        adapters["query"] = TypeAdapter(route.query)
    if route.body is not None:
        adapters["body"] = TypeAdapter(route.body)

    async def serve(request: web.Request) -> web.StreamResponse:
        result = await handler(request, **await _arguments(route, adapters, request))
        if isinstance(result, web.StreamResponse):
            return result
        if not isinstance(result, Wire):
            raise TypeError(f"{route.operation_id} returned {type(result).__name__}")
        return web.Response(
            body=result.to_json(), status=route.success(), content_type="application/json"
        )

    return serve


def _signature(handler: Callable[..., Any], path: str) -> dict[str, Any]:
    """The handler's parameter types, checked against the path's names."""
    hints = typing.get_type_hints(handler, include_extras=True)
    names = list(inspect.signature(handler).parameters)
    in_path = {part[1:-1] for part in path.split("/") if part.startswith("{")}
    declared = set(names) - INJECTED
    if declared != in_path:
        raise TypeError(f"{handler.__name__} takes {sorted(declared)}, {path} has {in_path}")
    return {name: hints[name] for name in names if name != "request"}


def _path_params(types: Mapping[str, Any]) -> tuple[PathParam, ...]:
    params = []
    for name, kind in types.items():
        if name in INJECTED:
            continue
        metas = [m for m in getattr(kind, "__metadata__", ()) if isinstance(m, PathValue)]
        if not metas:
            raise TypeError(f"path parameter {name} needs a PathValue in its type")
        params.append(PathParam(name, kind, TypeAdapter(kind), metas[0]))
    return tuple(params)


class Routes:
    """The routes of one area of the API (one OpenAPI tag)."""

    def __init__(self, tag: str, description: str) -> None:
        self.tag = tag
        self.description = description
        self.declared: list[tuple[Route, Endpoint]] = []

    def route(
        self,
        method: str,
        path: str,
        operation_id: str,
        summary: str,
        *,
        ok: Answer | tuple[Answer, ...],
        auth: Auth = PUBLIC,
        errors: Errors | None = None,
        versioned: bool = False,
        limited: bool = True,
        description: str | None = None,
        parameters: tuple[Mapping[str, Any], ...] = (),
        body_doc: Any = None,
    ) -> Callable[[F], F]:
        def declare(handler: F) -> F:
            types = _signature(handler, path)
            if body_doc is not None and "body" in types:
                raise TypeError(f"{handler.__name__} takes a body and reads one itself")
            route = Route(
                method=method,
                path=path,
                operation_id=operation_id,
                summary=summary,
                tag=self.tag,
                auth=auth,
                answers=ok if isinstance(ok, tuple) else (ok,),
                errors=errors or {},
                path_params=_path_params(types),
                query=types.get("query"),
                body=types.get("body"),
                body_doc=body_doc,
                wants_principal="principal" in types,
                versioned=versioned,
                limited=limited,
                description=description,
                parameters=parameters,
            )
            self.declared.append((route, endpoint(route, handler)))
            return handler

        return declare

    def get(self, path: str, operation_id: str, summary: str, **options: Any) -> Callable[[F], F]:
        return self.route("GET", path, operation_id, summary, **options)

    def post(self, path: str, operation_id: str, summary: str, **options: Any) -> Callable[[F], F]:
        return self.route("POST", path, operation_id, summary, **options)

    def put(self, path: str, operation_id: str, summary: str, **options: Any) -> Callable[[F], F]:
        return self.route("PUT", path, operation_id, summary, **options)

    def patch(self, path: str, operation_id: str, summary: str, **options: Any) -> Callable[[F], F]:
        return self.route("PATCH", path, operation_id, summary, **options)

    def delete(
        self, path: str, operation_id: str, summary: str, **options: Any
    ) -> Callable[[F], F]:
        return self.route("DELETE", path, operation_id, summary, **options)

    def add_to(self, app: web.Application) -> None:
        """Serve these routes and list them for the document."""
        app.setdefault(TAGS, {})[self.tag] = self.description
        contract = app.setdefault(CONTRACT, {})
        for route, serve in self.declared:
            if route.method == "GET":  # and HEAD, as aiohttp's add_get (RFC 9110 9.3.2)
                app.router.add_get(route.path, serve)
            else:
                app.router.add_route(route.method, route.path, serve)
            contract[(route.method, route.path)] = route
