"""Idempotency-Key on POST /batches and POST /batches/{id}/retry, per tenant.

The same key with the same request (method, path, query and body) answers what the first request answered
(status, body, Location) and creates nothing; the same key with another request is refused (422). Keys are
kept IDEMPOTENCY_KEY_TTL_SECONDS (24 h), then purged by the webhook worker. Two tenants' keys never meet.

How it holds across replicas and concurrent requests: (tenant, key) is the primary key of `idempotency_keys`.
Once the route has read the body (hashing it as it streamed), it claims the key (a committed row
`in_progress`, owned by that request); the answer is stored by a conditional UPDATE in the very transaction
that creates the batch or the pass, so the work and its answer are committed together or not at all. A second
request with the key finds the row: if it is completed, it gets the stored answer; if it is still in
progress, it waits (up to IDEMPOTENCY_WAIT_SECONDS) for the first one to finish and then gets the same answer;
past that it gets 409 "in progress" with Retry-After. A request that fails (4xx or 5xx) gives its key back, so a
corrected request may use it again. A request that died holding a key frees it after IN_PROGRESS_LEASE; if it
was only slow, its own commit then fails (its claim is gone), so one key never creates two batches.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated

from fastapi import Depends, Header, Request, Response
from pydantic import BaseModel

from service.api.auth import PrincipalDep
from service.api.deps import AppState, SessionDep, StateDep
from service.kit.clock import utcnow
from service.kit.problems import Problem, conflict
from service.models import IdempotencyKey, IdempotencyState
from service.store import Session
from service.store import idempotency as idempotency_store

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"  # visible ASCII, as the IETF draft's examples (UUIDs and the like)
IN_PROGRESS_LEASE = timedelta(minutes=5)
POLL_SECONDS = 0.05
JSON = "application/json"


def request_fingerprint(method: str, path: str, query: list[tuple[str, str]], body_sha256: str) -> str:
    digest = hashlib.sha256()
    for part in (method.upper(), path, "&".join(f"{name}={value}" for name, value in sorted(query))):
        digest.update(part.encode("utf-8") + b"\n")
    digest.update(body_sha256.encode())
    return digest.hexdigest()


def _answer(status: int, body: bytes | str, location: str | None, *, replayed: bool) -> Response:
    headers = {"Location": location} if location else {}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(content=body, status_code=status, media_type=JSON, headers=headers)


@dataclass
class Idempotency:
    """What a keyed route needs: the stored answer to replay, or the claim to complete with its own answer."""

    key: str | None
    tenant: str
    method: str = ""
    path: str = ""
    query: tuple[tuple[str, str], ...] = ()
    request_hash: str = ""
    owner: str = ""
    replay: Response | None = None
    claimed: bool = False
    completed: bool = False

    async def begin(self, state: AppState, body_sha256: str) -> Response | None:
        """Claim the key for this request now that its body is known; the stored answer to replay instead, or
        None (no key, or the key is ours)."""
        if self.key is None:
            return None
        self.request_hash = request_fingerprint(self.method, self.path, list(self.query), body_sha256)
        self.owner = uuid.uuid4().hex
        await _claim_or_replay(state, self)
        self.claimed = self.replay is None
        return self.replay

    async def respond(
        self, session: Session, body: BaseModel, *, status_code: int, location: str | None = None
    ) -> Response:
        """Commit the route's work together with its answer (stored under the key, if any) and return it."""
        content = body.model_dump_json(by_alias=True)
        if self.claimed and self.key is not None:
            stored = await idempotency_store.complete(
                session,
                tenant=self.tenant,
                key=self.key,
                owner=self.owner,
                status=status_code,
                body=content,
                location=location,
            )
            if not stored:
                # Our claim expired and another request took the key over: this work must not be committed.
                raise conflict(f"{HEADER} {self.key!r} was taken over by another request; nothing was created")
        await session.commit()
        self.completed = True
        return _answer(status_code, content, location, replayed=False)


def _in_progress(key: str) -> Problem:
    problem = conflict(f"a request with {HEADER} {key!r} is in progress; send it again in a moment")
    problem.headers["Retry-After"] = "1"
    return problem


def _reused(key: str, row: IdempotencyKey) -> Problem:
    return Problem(
        422,
        "idempotency-key-reused",
        "Idempotency-Key reused",
        f"{HEADER} {key!r} was already used for a different request ({row.method} {row.path} with another "
        "query or body); a new request needs a new key",
        field=HEADER,
    )


async def _claim(state: AppState, idempotency: Idempotency) -> tuple[bool, IdempotencyKey | None]:
    """(True, None) when the key is now ours, else (False, the row holding it, or None when it just went away)."""
    assert idempotency.key is not None
    now = utcnow()
    claimed = await idempotency_store.claim(
        state.sessions,
        tenant=idempotency.tenant,
        key=idempotency.key,
        request_hash=idempotency.request_hash,
        method=idempotency.method,
        path=idempotency.path,
        owner=idempotency.owner,
        locked_until=now + IN_PROGRESS_LEASE,
        expires_at=now + timedelta(seconds=state.settings.idempotency_key_ttl_seconds),
    )
    if claimed:
        return True, None
    return False, await idempotency_store.find(state.sessions, idempotency.tenant, idempotency.key)


async def _claim_or_replay(state: AppState, idempotency: Idempotency) -> None:
    assert idempotency.key is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + state.settings.idempotency_wait_seconds
    while True:
        claimed, holder = await _claim(state, idempotency)
        if claimed:
            return
        if holder is not None:
            if holder.request_hash != idempotency.request_hash:
                raise _reused(idempotency.key, holder)
            if holder.state == IdempotencyState.COMPLETED and holder.response_status is not None:
                idempotency.replay = _answer(
                    holder.response_status, holder.response_body or "", holder.response_location, replayed=True
                )
                return
            if loop.time() >= deadline:
                raise _in_progress(idempotency.key)
        await asyncio.sleep(POLL_SECONDS)


GIVE_BACK_ATTEMPTS = 3


async def _give_back(state: AppState, idempotency: Idempotency) -> None:
    """Free the key of a request that failed, so that it can be sent again at once. A key left held would make
    every resend wait IDEMPOTENCY_WAIT_SECONDS for a 409 "in progress" until IN_PROGRESS_LEASE: tried again
    on a passing error (a busy database), then left to the lease."""
    assert idempotency.key is not None
    for attempt in range(1, GIVE_BACK_ATTEMPTS + 1):
        try:
            await idempotency_store.give_back(
                state.sessions, tenant=idempotency.tenant, key=idempotency.key, owner=idempotency.owner
            )
            return
        except Exception:
            if attempt == GIVE_BACK_ATTEMPTS:
                logger.exception("could not give back %s %r", HEADER, idempotency.key)
                return
            await asyncio.sleep(POLL_SECONDS * attempt)


async def idempotency_key(
    request: Request,
    state: StateDep,
    principal: PrincipalDep,
    session: SessionDep,
    key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            pattern=KEY_PATTERN,
            description="Any unique string (a UUID, say), up to 255 visible ASCII characters. Sending the same "
            "request again with the same key returns the first answer and creates nothing; kept 24 h.",
        ),
    ] = None,
) -> AsyncIterator[Idempotency]:
    idempotency = Idempotency(
        key=key,
        tenant=principal.tenant,
        method=request.method,
        path=request.url.path,
        query=tuple(request.query_params.multi_items()),
    )
    try:
        yield idempotency
    finally:
        if idempotency.claimed and not idempotency.completed:
            # The request's own work is rolled back first: on SQLite its transaction may hold the write lock
            # that giving the key back needs (the request's session closes only after this dependency).
            await session.rollback()
            await _give_back(state, idempotency)


IdempotencyDep = Annotated[Idempotency, Depends(idempotency_key)]
