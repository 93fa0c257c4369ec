"""Who may do what, decided per request for the routes.

``Authorization: Bearer <token>`` carries a sign-in token (``inftd.daemon.auth.tokens``) or the
operator API key. Owner-only routes read the agent's owner from this process's live copy
(``inftd.agents.live``), which follows an indexed transfer within moments; a write is then
checked again against the owner on the agent's locked row (``inftd.agents.writer.admit``),
so a copy that lags a sale never lets the seller write.

    401 unauthenticated   no credentials
    401 invalid_token     a token that is not ours (or a wrong operator key)
    401 token_expired     a token past its expiry
    403 not_owner         signed in, but not as the agent's current owner
    403 not_operator      signed in, but the route is the operator's
    404 unknown_agent     no agent for the token id (owners and operators alike)
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from inftd.agents.errors import UnknownAgent
from inftd.agents.live import LiveAgents
from inftd.agents.writer import admit
from inftd.daemon.auth.tokens import AuthError, Principal, is_operator_key
from inftd.daemon.server.http import RUNTIME, ApiError

BEARER = "bearer"


def bearer_credential(request: web.Request) -> str | None:
    """The value of ``Authorization: Bearer <value>``, or None if there is no such header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != BEARER or not value.strip():
        raise ApiError(401, "invalid_token", "use 'Authorization: Bearer <token>'")
    return value.strip()


def principal_of(request: web.Request) -> Principal:
    """Who the request comes from; anonymous without credentials, 401 for bad ones."""
    return principal_for(request, bearer_credential(request))


def principal_for(request: web.Request, credential: str | None) -> Principal:
    """Who holds ``credential`` (a sign-in token or the operator key)."""
    if credential is None:
        return Principal()
    runtime = request.app[RUNTIME]
    if is_operator_key(runtime.settings, credential):
        return Principal(operator=True)
    try:
        return Principal(address=runtime.tokens.verify(credential, datetime.now(UTC)))
    except AuthError as exc:
        raise ApiError(401, exc.code, exc.message) from None


def require_signed_in(request: web.Request) -> Principal:
    principal = principal_of(request)
    if principal.address is None and not principal.operator:
        raise ApiError(401, "unauthenticated", "sign in first: Authorization: Bearer <token>")
    return principal


def require_operator(request: web.Request) -> Principal:
    principal = require_signed_in(request)
    if not principal.operator:
        raise ApiError(403, "not_operator", "only the operator may do this")
    return principal


async def require_owner(request: web.Request, token_id: int) -> Principal:
    """The current owner of the agent's package token, or the operator; else 401/403/404."""
    return await owner_or_operator(request.app[RUNTIME].live, require_signed_in(request), token_id)


async def owner_or_operator(live: LiveAgents, principal: Principal, token_id: int) -> Principal:
    """``principal`` if it owns the agent (admitted for its writes) or operates; else 403."""
    try:
        owner = await live.owner(token_id)
    except UnknownAgent as exc:
        raise ApiError(404, "unknown_agent", str(exc)) from None
    if principal.operator:
        return principal
    if principal.address != owner:
        raise ApiError(403, "not_owner", f"only the owner of package token {token_id} may do this")
    admit(token_id, owner)
    return principal
