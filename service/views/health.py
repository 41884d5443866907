"""/readyz: the database answers; the providers and the workers as the shared database says."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from service.store import Session
from service.store import fleet as fleet_store
from service.store.fleet import ProviderHealth
from service.views.response_bodies import ProviderState, Readiness


async def readiness(session: Session, lease_seconds: float, providers: Sequence[str]) -> Readiness:
    """Raises when the database does not answer."""
    await fleet_store.ping(session)
    known = await fleet_store.every_provider_health(session)
    states = {name: known.get(name, ProviderHealth()) for name in providers}
    degraded = [health for health in states.values() if health.degraded]
    paused = [health.backoff_until for health in degraded if health.backoff_until is not None]
    return Readiness(
        status="ok",
        database="ok",
        provider="degraded" if degraded else "ok",
        provider_last_error=degraded[0].last_error if degraded else None,
        provider_backoff_until=max(paused, default=None),
        providers={
            name: ProviderState(
                state="degraded" if health.degraded else "ok",
                last_error=health.last_error,
                backoff_until=health.backoff_until,
            )
            for name, health in states.items()
        },
        workers=await fleet_store.live_workers(session, timedelta(seconds=lease_seconds)),
    )


def unready(error: Exception) -> Readiness:
    return Readiness(
        status="unavailable",
        database=f"unavailable: {type(error).__name__}",
        provider="ok",
        provider_last_error=None,
        provider_backoff_until=None,
        workers=0,
    )
