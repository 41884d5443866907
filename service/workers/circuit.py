"""The global back-off towards the provider, shared by every worker through the `provider_health` row.

Each chunk already backs off on its own (honouring Retry-After). During an outage that is not enough: every
due chunk would still try once per back-off step, from every worker. So after a few provider failures in a
row (any worker's), or on a 429 that says how long to wait (Groq's limits are per account), every worker
pauses its provider work until `backoff_until`. The first call after the pause is the probe: a success closes
the circuit, a failure doubles the pause, up to PROVIDER_BACKOFF_MAX_SECONDS.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from service.db import rows_affected, transaction
from service.models import ProviderHealthRecord, utcnow
from service.providers.groq import ProviderError, RetryableProviderError
from service.workers.context import WorkerContext

logger = logging.getLogger(__name__)

PROVIDER = "groq"
# Failures in a row before every worker pauses; isolated errors only delay their own chunk.
CIRCUIT_THRESHOLD = 3


def circuit_pause_seconds(ctx: WorkerContext, failures: int, retry_after: float | None) -> float:
    """How long everyone waits after `failures` failures in a row (0: not yet)."""
    cap = ctx.settings.provider_backoff_max_seconds
    pause = 0.0
    if failures >= CIRCUIT_THRESHOLD:
        base = min(1.0, ctx.settings.poll_interval_seconds)
        pause = min(base * 2 ** (failures - CIRCUIT_THRESHOLD), cap) * random.uniform(0.8, 1.2)
    if retry_after is not None:
        pause = max(pause, min(retry_after, cap))
    return pause


@dataclass(frozen=True)
class CircuitState:
    failures: int = 0  # provider failures in a row, any worker's
    paused_until: datetime | None = None  # set while every worker pauses its provider work


async def read_circuit(ctx: WorkerContext) -> CircuitState:
    async with ctx.sessions() as session:
        record = await session.get(ProviderHealthRecord, PROVIDER)
    if record is None:
        return CircuitState()
    until = record.backoff_until if record.backoff_until is not None and record.backoff_until > utcnow() else None
    return CircuitState(record.consecutive_failures, until)


async def _bump_failures(ctx: WorkerContext, error: ProviderError) -> int:
    now = utcnow()
    for _ in range(2):  # the first failure ever inserts the row; two workers may race to do it
        try:
            async with transaction(ctx.sessions) as session:
                result = await session.execute(
                    update(ProviderHealthRecord)
                    .where(col(ProviderHealthRecord.provider) == PROVIDER)
                    .values(
                        consecutive_failures=col(ProviderHealthRecord.consecutive_failures) + 1,
                        last_error=str(error)[:2000],
                        last_error_at=now,
                    )
                    .returning(col(ProviderHealthRecord.consecutive_failures))
                )
                failures = result.scalar_one_or_none()
                if failures is not None:
                    return int(failures)
                session.add(
                    ProviderHealthRecord(
                        provider=PROVIDER, consecutive_failures=1, last_error=str(error)[:2000], last_error_at=now
                    )
                )
                return 1
        except IntegrityError:
            continue
    return 1


async def record_failure(ctx: WorkerContext, error: ProviderError) -> datetime | None:
    """Count a provider failure; returns the time everyone pauses until, if this failure opens the circuit."""
    if not isinstance(error, RetryableProviderError):
        return None  # the provider refused a request; it is not out
    failures = await _bump_failures(ctx, error)
    pause = circuit_pause_seconds(ctx, failures, error.retry_after)
    if pause <= 0:
        return None
    until = utcnow() + timedelta(seconds=pause)
    async with transaction(ctx.sessions) as session:
        await session.execute(
            update(ProviderHealthRecord)
            .where(
                col(ProviderHealthRecord.provider) == PROVIDER,
                or_(col(ProviderHealthRecord.backoff_until).is_(None), col(ProviderHealthRecord.backoff_until) < until),
            )
            .values(backoff_until=until)
        )
    if failures >= CIRCUIT_THRESHOLD:
        logger.warning("provider failed %d times in a row; every worker pauses provider work %.1fs", failures, pause)
    return until


async def record_success(ctx: WorkerContext) -> bool:
    """Close the circuit after a provider call succeeded; True if it was open or counting failures."""
    async with transaction(ctx.sessions) as session:
        result = await session.execute(
            update(ProviderHealthRecord)
            .where(col(ProviderHealthRecord.provider) == PROVIDER, col(ProviderHealthRecord.consecutive_failures) > 0)
            .values(consecutive_failures=0, backoff_until=None, last_success_at=utcnow())
        )
        closed = rows_affected(result) > 0
    if closed:
        logger.info("provider answers again; provider work resumes")
    return closed
