"""The worker's purge step: at each sweep of the batches, lease each batch a purge is due for (deleted, or
finished more than RETENTION_SECONDS ago) and have it purged (`service/batches/purging.py`), then release it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from service.batches.purging import finish_purges, purge_batch
from service.kit.clock import utcnow
from service.kit.fencing import LeaseLost
from service.models import Batch
from service.providers.protocol import ProviderError
from service.store import leases as leases_store
from service.store import purging as purging_store
from service.workers.context import WorkerContext
from service.workers.leasing import run_with_lease

logger = logging.getLogger(__name__)

# A sweep purges batches for up to this long (and this many), then rewrites SQLite's file once for all of them:
# after an upgrade, a backlog of old batches costs one VACUUM per few hundred batches, not one each.
PURGE_SWEEP_SECONDS = 5.0
MAX_PURGES_PER_SWEEP = 500


def retention_cutoff(ctx: WorkerContext) -> datetime | None:
    """Batches that finished before this are due for purging; None: RETENTION_SECONDS=0, kept until deleted."""
    seconds = ctx.settings.retention_seconds
    return utcnow() - timedelta(seconds=seconds) if seconds > 0 else None


async def purge_due(ctx: WorkerContext, stopping: Callable[[], bool]) -> int:
    """Purge the batches due (a few per sweep), then rid the database's files of them; how many were purged. A
    sweep with none due only reads."""
    cutoff = retention_cutoff(ctx)
    seen: list[str] = []
    purged: list[str] = []
    until = time.monotonic() + PURGE_SWEEP_SECONDS
    while not stopping() and len(seen) < MAX_PURGES_PER_SWEEP and time.monotonic() < until:
        async with ctx.sessions() as session:
            if await purging_store.next_due(session, cutoff, seen) is None:
                break
        batch_id = await purging_store.claim_next(ctx.sessions, ctx.worker_id, ctx.lease_seconds, cutoff, seen)
        if batch_id is None:
            break
        seen.append(batch_id)
        try:
            if await run_with_lease(ctx, Batch, batch_id, lambda: purge_batch(ctx, batch_id)):  # noqa: B023
                purged.append(batch_id)  # still leased: finish_purges marks it purged and releases it
                continue
        except LeaseLost:
            logger.warning("lost the lease on batch %s while purging it; its new owner carries on", batch_id)
        except ProviderError as error:  # the provider's files are deleted on a later sweep, then the rest
            logger.warning("purging batch %s: %s", batch_id, error)
        except Exception:
            logger.exception("purging batch %s failed; retrying on a later sweep", batch_id)
        await leases_store.release(ctx.sessions, Batch, batch_id, ctx.worker_id)
    if purged:
        await finish_purges(ctx, purged)
    return len(purged)
