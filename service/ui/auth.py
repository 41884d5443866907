"""Who may see the status page: the same bearer tokens as the API (API_TOKENS), sent in the Authorization
header or, for a browser, in a cookie set by the /ui/login form. No tokens configured: open, like the API."""

from __future__ import annotations

from fastapi import Request

from service.api.auth import token_digests, token_is_valid
from service.settings import Settings

TOKEN_COOKIE = "llm_batch_token"
COOKIE_PATH = "/ui"
COOKIE_MAX_AGE_SECONDS = 12 * 3600


def request_token(request: Request) -> str | None:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(TOKEN_COOKIE) or None


def token_accepted(settings: Settings, token: str | None) -> bool:
    """The API's own check (service/api/auth.py), whichever way the token came."""
    digests = token_digests(settings.api_tokens)
    if not digests:
        return True
    return token is not None and token_is_valid(token, digests)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: only a page of the status UI (no open redirect)."""
    if target and target.startswith(COOKIE_PATH) and not target.startswith("//") and "\\" not in target:
        return target
    return COOKIE_PATH
