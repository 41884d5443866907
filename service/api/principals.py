"""Who is asking: the tenant of a bearer token (API_TOKENS `name:token`, a bare token is tenant `default`), or
every tenant (ADMIN_TOKENS, or authentication off)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from service.kit.problems import Problem
from service.models import DEFAULT_TENANT
from service.settings import TokenGrant

REALM = "llm-batch"


@dataclass(frozen=True)
class Principal:
    """Who is asking: a tenant's token, an admin token (every tenant), or nobody (authentication off)."""

    tenant: str
    admin: bool = False

    @property
    def scope(self) -> str | None:
        """The tenant whose batches this request may see; None: every tenant's."""
        return None if self.admin else self.tenant


OPEN = Principal(tenant=DEFAULT_TENANT, admin=True)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass(frozen=True)
class TokenTable:
    grants: tuple[tuple[bytes, TokenGrant], ...]

    @classmethod
    def of(cls, grants: Sequence[TokenGrant]) -> TokenTable:
        return cls(tuple((_digest(grant.token), grant) for grant in grants))

    @property
    def enabled(self) -> bool:
        return bool(self.grants)

    def match(self, candidate: str) -> TokenGrant | None:
        """Constant time: every configured token is compared, whichever matches."""
        offered = _digest(candidate)
        found: TokenGrant | None = None
        for digest, grant in self.grants:
            if hmac.compare_digest(offered, digest):
                found = grant
        return found


def _unauthorized(detail: str, error: str | None) -> Problem:
    problem = Problem(401, "unauthorized", "Unauthorized", detail)
    challenge = f'Bearer realm="{REALM}"' + (f', error="{error}"' if error else "")
    problem.headers["WWW-Authenticate"] = challenge
    return problem


def principal_for(authorization: str | None, table: TokenTable) -> Principal:
    """Who the Authorization header says is asking; Problem 401 when it says nothing valid (and auth is on)."""
    if not table.enabled:
        return OPEN
    scheme, _, credentials = (authorization or "").strip().partition(" ")
    if not authorization:
        raise _unauthorized("this route needs a bearer token: send Authorization: Bearer <token>", None)
    if scheme.lower() != "bearer" or not credentials.strip():
        raise _unauthorized("the Authorization header must be: Bearer <token>", "invalid_request")
    grant = table.match(credentials.strip())
    if grant is None:
        raise _unauthorized("the bearer token is not valid", "invalid_token")
    return Principal(tenant=grant.tenant, admin=grant.admin)


def token_principal(token: str | None, table: TokenTable) -> Principal | None:
    """The principal of a bare token (the status page's cookie), or None when it is not valid."""
    if not table.enabled:
        return OPEN
    grant = table.match(token) if token else None
    return None if grant is None else Principal(tenant=grant.tenant, admin=grant.admin)
