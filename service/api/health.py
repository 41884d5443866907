"""Liveness and readiness; open without a token so orchestrators can probe them."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.api.deps import StateDep
from service.api.schemas import Health, Readiness
from service.workers.heartbeat import read_fleet_health

router = APIRouter(tags=["health"])


def startup_warnings(state: StateDep) -> list[str]:
    warnings = []
    if state.provider_label == "emulator":
        warnings.append("GROQ_API_KEY is not set: batches run against the built-in Groq emulator, not Groq")
    if not state.settings.api_tokens:
        warnings.append("API_TOKENS is empty: authentication is off")
    return warnings


@router.get("/healthz", response_model=Health, summary="Liveness, with the provider in use")
async def healthz(state: StateDep) -> Health:
    return Health(
        status="ok",
        provider=state.provider_label,
        auth="on" if state.settings.api_tokens else "off",
        warnings=startup_warnings(state),
    )


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: the database answers; the provider's state as the workers last saw it",
    responses={503: {"model": Readiness}},
)
async def readyz(state: StateDep) -> JSONResponse:
    database = "ok"
    fleet = None
    try:
        async with state.sessions() as session:
            await session.execute(text("SELECT 1"))
            # Written by the workers, wherever they run: an API-only replica sees what they see.
            fleet = await read_fleet_health(session, state.settings.worker_lease_seconds)
    except Exception as error:  # any failure means not ready; say why
        database = f"unavailable: {type(error).__name__}"
    body = Readiness(
        status="ok" if database == "ok" else "unavailable",
        database=database,
        provider="degraded" if fleet is not None and fleet.provider_degraded else "ok",
        provider_last_error=fleet.provider_last_error if fleet is not None else None,
        provider_backoff_until=fleet.provider_backoff_until if fleet is not None else None,
        workers=fleet.live_workers if fleet is not None else 0,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if database == "ok" else 503)
