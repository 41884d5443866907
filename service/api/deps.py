"""Typed dependencies for routes: the request's unit of work and the app's shared state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from service.batches.config import LifecycleConfig
from service.settings import Settings
from service.store import Database, Session, Sessions
from service.webhooks.ssrf import CallbackGuard


@dataclass
class AppState:
    config: LifecycleConfig
    database: Database
    provider_label: str
    # The SSRF guard for callback_url, shared with the webhook worker (tests swap its resolver).
    callback_guard: CallbackGuard = field(default_factory=CallbackGuard)

    @property
    def settings(self) -> Settings:
        return self.config.settings

    @property
    def sessions(self) -> Sessions:
        """The API's own pool: the workers have theirs."""
        return self.database.api


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.llm_batch
    return state


async def get_session(state: Annotated[AppState, Depends(get_state)]) -> AsyncIterator[Session]:
    """One unit of work per request. Writing routes commit before they answer (so a client that reads right
    after a 202 sees what it wrote); anything uncommitted is rolled back when the session closes."""
    async with state.sessions() as session:
        yield session


StateDep = Annotated[AppState, Depends(get_state)]
SessionDep = Annotated[Session, Depends(get_session)]
