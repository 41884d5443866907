"""Typed dependencies for routes: the request's unit of work and the app's shared state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from service.pipeline.cost import PriceTable
from service.settings import Settings
from service.webhooks.ssrf import CallbackGuard


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    prices: PriceTable
    provider_label: str
    # The SSRF guard for callback_url, shared with the webhook worker (tests swap its resolver).
    callback_guard: CallbackGuard = field(default_factory=CallbackGuard)


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.llm_batch
    return state


async def get_session(state: Annotated[AppState, Depends(get_state)]) -> AsyncIterator[AsyncSession]:
    """One unit of work per request. Writing routes commit before they answer (so a client that reads right
    after a 202 sees what it wrote); anything uncommitted is rolled back when the session closes."""
    async with state.sessions() as session:
        yield session


StateDep = Annotated[AppState, Depends(get_state)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
