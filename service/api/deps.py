"""Typed dependencies for routes: the request's unit of work and the app's shared state."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from service.api.principals import TokenTable
from service.batches.config import LifecycleConfig
from service.settings import Settings
from service.store import Database, Session, Sessions
from service.webhooks.ssrf import CallbackGuard


@dataclass
class ExportSlots:
    """How many NDJSON exports may stream at once in this process; the rest get 503 with Retry-After."""

    limit: int
    in_use: int = 0

    def take(self) -> bool:
        if self.in_use >= self.limit:
            return False
        self.in_use += 1
        return True

    def give_back(self) -> None:
        self.in_use = max(0, self.in_use - 1)


@dataclass
class AppState:
    config: LifecycleConfig
    database: Database
    provider_label: str
    tokens: TokenTable
    # The SSRF guard for callback_url, shared with the webhook worker (tests swap its resolver).
    callback_guard: CallbackGuard = field(default_factory=CallbackGuard)
    exports: ExportSlots = field(default_factory=lambda: ExportSlots(4))
    # Wakes this process's workers at once (a batch to lay out, a cancel to send) instead of at their next sweep.
    wake: Callable[[], None] = field(default=lambda: None)

    def wake_workers(self) -> None:
        self.wake()

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def sessions(self) -> Sessions:
        """The API's own pool: the workers have theirs."""
        return self.database.api


async def get_state(request: Request) -> AppState:
    """Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a hop per request."""
    state: AppState = request.app.state.llm_batch
    return state


async def get_session(state: Annotated[AppState, Depends(get_state)]) -> AsyncIterator[Session]:
    """One unit of work per request. Writing routes commit before they answer (so a client that reads right
    after a 202 sees what it wrote); anything uncommitted is rolled back when the session closes."""
    async with state.sessions() as session:
        yield session


StateDep = Annotated[AppState, Depends(get_state)]
SessionDep = Annotated[Session, Depends(get_session)]
