"""Bearer tokens (API_TOKENS) on every /batches route; /healthz and /readyz stay open.

The check runs twice on purpose. A middleware refuses an unauthenticated /batches request before its body is
read (so a caller without a token cannot make the service read and parse hundreds of megabytes), and a router
dependency holds on every route of the router whatever its path (and documents the scheme in the OpenAPI).
Tokens are compared in constant time, on their SHA-256 digests so that not even their lengths leak.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.deps import StateDep
from service.api.errors import problem_response
from service.kit.problems import Problem

PROTECTED_PREFIX = "/batches"
REALM = "llm-batch"

UNAUTHORIZED_RESPONSE: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or wrong bearer token (see the WWW-Authenticate header)"}
}

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="One of the tokens in API_TOKENS (no token needed when API_TOKENS is empty).",
)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_digests(tokens: Iterable[str]) -> tuple[bytes, ...]:
    return tuple(_digest(token) for token in tokens if token)


def token_is_valid(candidate: str, digests: Sequence[bytes]) -> bool:
    """Constant time: every configured token is compared, whichever matches."""
    offered = _digest(candidate)
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(offered, digest)
    return matched


def authorization_refusal(authorization: str | None, digests: Sequence[bytes]) -> Problem | None:
    """Why a request with this Authorization header may not go on (None: it may; always when auth is off)."""
    if not digests:
        return None
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if not authorization:
        return _unauthorized("this route needs a bearer token: send Authorization: Bearer <token>", None)
    if scheme.lower() != "bearer" or not credentials.strip():
        return _unauthorized("the Authorization header must be: Bearer <token>", "invalid_request")
    if not token_is_valid(credentials.strip(), digests):
        return _unauthorized("the bearer token is not valid", "invalid_token")
    return None


def _unauthorized(detail: str, error: str | None) -> Problem:
    problem = Problem(401, "unauthorized", "Unauthorized", detail)
    challenge = f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")
    problem.headers["WWW-Authenticate"] = challenge
    return problem


class BearerAuthMiddleware:
    """Refuses unauthenticated requests under /batches before anything reads their body."""

    def __init__(self, app: ASGIApp, tokens: Iterable[str]) -> None:
        self.app = app
        self.digests = token_digests(tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.digests and _is_protected(scope["path"]):
            problem = authorization_refusal(Headers(scope=scope).get("authorization"), self.digests)
            if problem is not None:
                response = problem_response(problem.status, problem.slug, problem.title, problem.detail)
                response.headers.update(problem.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _is_protected(path: str) -> bool:
    return path == PROTECTED_PREFIX or path.startswith(PROTECTED_PREFIX + "/")


async def require_token(
    request: Request,
    state: StateDep,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    problem = authorization_refusal(request.headers.get("authorization"), token_digests(state.settings.api_tokens))
    if problem is not None:
        raise problem
