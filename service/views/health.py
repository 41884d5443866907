"""/readyz: the database answers; the provider and the workers as the shared database says."""

from __future__ import annotations

from datetime import timedelta

from service.store import Session
from service.store import fleet as fleet_store
from service.views.response_bodies import Readiness


async def readiness(session: Session, lease_seconds: float) -> Readiness:
    """Raises when the database does not answer."""
    await fleet_store.ping(session)
    health = await fleet_store.provider_health(session)
    return Readiness(
        status="ok",
        database="ok",
        provider="degraded" if health.degraded else "ok",
        provider_last_error=health.last_error if health.degraded else None,
        provider_backoff_until=health.backoff_until,
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
