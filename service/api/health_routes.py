"""Liveness, readiness and the model catalogue; /healthz and /readyz are open without a token so orchestrators
can probe them."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import AppState, SessionDep, StateDep
from service.views.health import readiness, unready
from service.views.models import unusable_models
from service.views.response_bodies import Health, Readiness

router = APIRouter(tags=["health"])


def startup_warnings(state: AppState) -> list[str]:
    warnings = []
    if state.provider_label == "emulator":
        warnings.append(
            "no provider key is set (GROQ_API_KEY, OPENAI_API_KEY, ANTHROPIC_API_KEY): batches run against the "
            "built-in emulators of Groq, OpenAI and Anthropic, not the providers"
        )
    for provider, variable in state.settings.missing_keys().items():
        warnings.append(f"{variable} is not set: tiers on {provider} are refused")
    if not state.settings.auth_enabled:
        warnings.append("API_TOKENS is empty: authentication is off")
    return warnings


@router.get("/healthz", response_model=Health, summary="Liveness, with the provider in use and unusable models")
async def healthz(state: StateDep, session: SessionDep) -> Health:
    try:
        unusable = await unusable_models(session, state.config.catalogue, state.settings.missing_keys())
    except Exception:  # liveness does not depend on the database; /readyz says when it is down
        unusable = {}
    return Health(
        status="ok",
        provider=state.provider_label,
        providers=state.settings.provider_states(),
        auth="on" if state.settings.auth_enabled else "off",
        warnings=startup_warnings(state),
        unusable_models=unusable,
    )


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: the database answers; the provider's state as the workers last saw it",
    responses={503: {"model": Readiness}},
)
async def readyz(state: StateDep) -> JSONResponse:
    try:
        async with state.sessions() as session:
            # Written by the workers, wherever they run: an API-only replica sees what they see.
            body = await readiness(session, state.settings.worker_lease_seconds, state.settings.provider_names())
    except Exception as error:  # any failure means not ready; say why
        return JSONResponse(unready(error).model_dump(mode="json"), status_code=503)
    return JSONResponse(body.model_dump(mode="json"), status_code=200)
