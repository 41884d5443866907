"""Who may see the status page: the same bearer tokens as the API (API_TOKENS, ADMIN_TOKENS), sent in the
Authorization header or, for a browser, in a cookie set by the /ui/login form; each sees its tenant's batches
(an admin token every tenant's). No tokens configured: open, like the API."""

from __future__ import annotations

from fastapi import Request

from service.api.principals import Principal, TokenTable, token_principal

TOKEN_COOKIE = "llm_batch_token"
COOKIE_PATH = "/ui"
COOKIE_MAX_AGE_SECONDS = 12 * 3600


def request_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(TOKEN_COOKIE) or None


def page_principal(table: TokenTable, token: str | None) -> Principal | None:
    """The API's own check (service/api/principals.py), whichever way the token came; None: not allowed."""
    return token_principal(token, table)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a page of the status UI (no open redirect)."""
    if target and target.startswith(COOKIE_PATH) and not target.startswith("//") and "\\" not in target:
        return target
    return COOKIE_PATH
