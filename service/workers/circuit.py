"""The back-off towards each provider, shared by every worker through the provider's `provider_health` row.

Each chunk already backs off on its own (honouring Retry-After). During an outage that is not enough: every
due chunk would still try once per back-off step, from every worker. So after a few failures in a row on one
provider (any worker's), or on a 429 that says how long to wait (limits are per account), every worker pauses
its work on that provider until `backoff_until`; the other providers' work goes on. The first call after the
pause is the probe: a success closes the circuit, a failure doubles the pause, up to
PROVIDER_BACKOFF_MAX_SECONDS.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from service.kit.clock import utcnow
from service.pipeline.backoff import backoff_seconds
from service.providers.protocol import ProviderError, RetryableProviderError
from service.store import fleet as fleet_store
from service.store.fleet import ProviderHealth
from service.workers.context import WorkerContext

logger = logging.getLogger(__name__)

# Failures in a row before every worker pauses; isolated errors only delay their own chunk.
CIRCUIT_THRESHOLD = 3


def circuit_pause_seconds(ctx: WorkerContext, failures: int, retry_after: float | None) -> float:
    """How long everyone waits after `failures` failures in a row (0: not yet)."""
    cap = ctx.settings.provider_backoff_max_seconds
    pause = 0.0
    if failures >= CIRCUIT_THRESHOLD:
        base = min(1.0, ctx.settings.poll_interval_seconds)
        pause = backoff_seconds(failures - CIRCUIT_THRESHOLD, base=base, cap=cap)
    if retry_after is not None:
        pause = max(pause, min(retry_after, cap))
    return pause


async def read_circuit(ctx: WorkerContext, provider: str = fleet_store.PROVIDER) -> ProviderHealth:
    async with ctx.sessions() as session:
        return await fleet_store.provider_health(session, provider)


async def read_circuits(ctx: WorkerContext) -> dict[str, ProviderHealth]:
    """The state of every provider this worker runs."""
    async with ctx.sessions() as session:
        known = await fleet_store.every_provider_health(session)
    return {provider.name: known.get(provider.name, ProviderHealth()) for provider in ctx.providers}


async def record_failure(
    ctx: WorkerContext, error: ProviderError, source: str | None = None, provider: str = fleet_store.PROVIDER
) -> datetime | None:
    """Count a failure on `provider` of `source`'s step (a row, or None); returns the time everyone pauses work
    on the provider until, if this failure opens its circuit. One row failing again and again (a request the
    provider chokes on, as much as an outage seen by one chunk) keeps the pause at its first step: the row backs
    off by itself, and every other row gets its turn within a second or two."""
    if not isinstance(error, RetryableProviderError):
        return None  # the provider refused a request; it is not out
    failures, repeated = await fleet_store.count_failure(ctx.sessions, str(error), source, provider)
    counted = min(failures, CIRCUIT_THRESHOLD) if repeated else failures
    pause = circuit_pause_seconds(ctx, counted, error.retry_after)
    if pause <= 0:
        return None
    until = utcnow() + timedelta(seconds=pause)
    await fleet_store.pause_until(ctx.sessions, until, provider)
    if failures >= CIRCUIT_THRESHOLD:
        logger.warning("%s failed %d times in a row; every worker pauses work on it %.1fs", provider, failures, pause)
    return until


async def record_success(ctx: WorkerContext, provider: str = fleet_store.PROVIDER) -> bool:
    """Close `provider`'s circuit after a call to it succeeded; True if it was open or counting failures."""
    closed = await fleet_store.count_success(ctx.sessions, provider)
    if closed:
        logger.info("%s answers again; work on it resumes", provider)
    return closed
