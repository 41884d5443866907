"""GET /models: the catalogue (prices, structured output, limits, lifecycle) and what can be used now."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import SessionDep, StateDep
from service.views.models import model_list
from service.views.response_bodies import ModelList

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=ModelList, summary="The model catalogue, and which models can be used now")
async def list_models(session: SessionDep, state: StateDep) -> ModelList:
    settings = state.settings
    return await model_list(session, state.config.catalogue, settings.default_cascade(), settings.missing_keys())
