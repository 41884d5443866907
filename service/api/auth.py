"""Bearer tokens (API_TOKENS, ADMIN_TOKENS) on every /batches and /models route; /healthz and /readyz stay open.

A token belongs to a tenant (`name:token` in API_TOKENS; a bare token to tenant `default`). A request sees only
its tenant's batches: another tenant's batch answers 404 on every route, as if it did not exist. ADMIN_TOKENS
see every tenant. With no token configured, authentication is off and everything is tenant `default`'s.

The check runs twice on purpose. A middleware refuses an unauthenticated request before its body is read (so
a caller without a token cannot make the service read and parse hundreds of megabytes), and a router
dependency holds on every route of the router whatever its path, documents the scheme in the OpenAPI, and
hands the route its `Principal`. Tokens are compared in constant time, on their SHA-256 digests so that not
even their lengths leak.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.deps import StateDep
from service.api.errors import problem_response
from service.api.principals import Principal, TokenTable, principal_for
from service.kit.problems import Problem
from service.settings import TokenGrant

PROTECTED_PREFIXES = ("/batches", "/models")

UNAUTHORIZED_RESPONSE: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong bearer token (see the WWW-Authenticate header)"}
}

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="One of the tokens in API_TOKENS or ADMIN_TOKENS (no token needed when both are empty).",
)


class BearerAuthMiddleware:
    """Refuses unauthenticated requests under the protected prefixes before anything reads their body."""

    def __init__(self, app: ASGIApp, grants: Sequence[TokenGrant]) -> None:
        self.app = app
        self.table = TokenTable.of(grants)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.table.enabled and _is_protected(scope["path"]):
            try:
                principal_for(Headers(scope=scope).get("authorization"), self.table)
            except Problem as problem:
                response = problem_response(problem.status, problem.slug, problem.title, problem.detail)
                response.headers.update(problem.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_protected(path: str) -> bool:
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PROTECTED_PREFIXES)


async def require_principal(
    request: Request,
    state: StateDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    return principal_for(request.headers.get("authorization"), state.tokens)


PrincipalDep = Annotated[Principal, Depends(require_principal)]
