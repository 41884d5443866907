"""Deleting a batch and purging its content: asked by DELETE /batches/{id}, or due RETENTION_SECONDS after the
batch finished; carried out by a worker (`purge_batch`).

A DELETE marks the batch deleted (from then on none of its content is served: its results and items answer 410)
and cancels it if it is still running. Once it is terminal, so no chunk of it is at the provider any more (a
cancelled batch ends only when its chunks have ended), a worker leases it and purges it: the files the provider
keeps of every chunk (whatever PROVIDER_FILE_CLEANUP says: a deletion is asked for), every file spooled for it on
this host, then, in one transaction fenced on the lease, every body, output, error text and request hash
(`store/purging.py` says what goes and what stays). After a sweep's purges, on SQLite, the file is rewritten
(VACUUM) and the WAL checkpointed and truncated (`forget_purged_pages`), so the text is in neither file; only
then is each batch marked purged (`purged_at`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from service.batches.chunks.cleanup import delete_provider_files
from service.batches.chunks.context import StepContext
from service.batches.chunks.spool import discard_batch_spool
from service.batches.reading import batch_or_404
from service.kit.problems import gone
from service.models import OPEN_BATCH_STATUSES, Batch
from service.store import Session, transaction
from service.store import batches as batches_store
from service.store import notifications as notifications_store
from service.store import purging as purging_store
from service.store.dialect import rewrite_file, truncate_wal

logger = logging.getLogger(__name__)

TRUNCATE_PAUSES = (0.05, 0.2, 1.0)  # between tries at truncating SQLite's WAL after a purge


def check_not_deleted(batch: Batch) -> None:
    """Nothing of a deleted batch's content is served, nor can it run again: 410."""
    if batch.deleted_at is not None:
        state = "purged" if batch.purged_at is not None else "being purged"
        raise gone(f"batch {batch.id} was deleted; its content is {state} and only its summary remains")


async def request_deletion(session: Session, batch_id: str, tenant: str | None) -> Batch:
    """Mark the batch deleted (flushed, not committed) and cancel it if it is running; the batch as it is now.
    Idempotent: a second call changes nothing."""
    batch = await batch_or_404(session, batch_id, tenant)
    if batch.deleted_at is None and await purging_store.mark_deleted(session, batch_id):
        if batch.status in OPEN_BATCH_STATUSES:
            await batches_store.request_cancel(session, batch_id)
        await notifications_store.announce_work(session)
    fresh = await batches_store.get_batch(session, batch_id)
    assert fresh is not None
    return fresh


async def purge_batch(ctx: StepContext, batch_id: str) -> bool:
    """Purge the content of a terminal batch this worker has leased; whether it was purged (False: it was
    reopened or taken over meanwhile). The batch stays leased until `finish_purges` marks it purged, once the
    database's files are rid of it. Retryable provider errors propagate: the purge is tried again later."""
    async with ctx.sessions() as session:
        with_files = await purging_store.chunks_with_files(session, batch_id)
    for chunk, pass_number in with_files:
        assert chunk.id is not None
        if chunk.provider not in ctx.providers:  # no longer configured: its files cannot be reached from here
            logger.warning("batch %s: chunk %s's files on %s are left to it", batch_id, chunk.id, chunk.provider)
            continue
        await delete_provider_files(ctx.providers.get(chunk.provider), chunk, pass_number)
        async with transaction(ctx.sessions) as session:
            await purging_store.note_files_deleted(session, chunk.id)
    async with ctx.sessions() as session:
        chunk_ids = await purging_store.chunk_ids(session, batch_id)
    discard_batch_spool(ctx.spool_dir, batch_id, chunk_ids)
    async with transaction(ctx.sessions) as session:
        purged = await purging_store.purge(session, batch_id, ctx.worker_id)
    if purged:
        logger.info("batch %s purged (%d chunks had files at their provider)", batch_id, len(with_files))
    return purged


async def finish_purges(ctx: StepContext, batch_ids: Sequence[str]) -> None:
    """After a sweep's purges: the database's files rid of the purged text (`forget_purged_pages`), then each
    batch marked purged and released. Should this fail (a lock held past the busy timeout), the leases run out
    and the batches are purged again, which changes nothing but their files' pages."""
    await forget_purged_pages(ctx)
    async with transaction(ctx.sessions) as session:
        for batch_id in batch_ids:
            await purging_store.mark_purged(session, batch_id, ctx.worker_id)


async def forget_purged_pages(ctx: StepContext) -> bool:
    """After a sweep's purges, on SQLite: rewrite the file (VACUUM: page splits leave copies of rows in free
    space that `secure_delete` does not clear) and truncate the WAL, which then holds the old pages. A reader
    holding an older snapshot makes the truncation try again a few times; whether it succeeded (if not, the next
    purge's truncation takes the old pages too). Nothing on PostgreSQL (its VACUUM: see the README)."""
    async with ctx.sessions() as session:
        await rewrite_file(session)
    for pause in TRUNCATE_PAUSES:
        async with ctx.sessions() as session:
            if await truncate_wal(session):
                return True
        await asyncio.sleep(pause)
    logger.warning("purged batches' old pages are still in SQLite's WAL: a reader kept it from being truncated")
    return False
