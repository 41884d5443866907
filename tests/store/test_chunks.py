"""store.chunks on SQLite and PostgreSQL: a worker's writes to a chunk are fenced on the expected state and its
own lease (a worker paused past its lease changes nothing), deferring is fenced on the lease, a cancel sent marks
only a submitted chunk due at once, and the reads a step makes (its pass and batch, the log fields)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import col

from service.kit.clock import utcnow
from service.models import Chunk, ChunkState
from service.providers.protocol import ProviderBatchInfo, RequestCounts
from service.store import Database, transaction
from service.store import chunks as chunks_store
from service.store import passes as passes_store
from tests.store.rows import SentPass, all_rows, one_row, seed

HOLDER, OTHER = "worker-1", "worker-2"


async def held_chunk(db: Database, state: str = ChunkState.PENDING) -> SentPass:
    """The seeded pass's chunk, in `state`, leased by HOLDER."""
    sent = await seed(db.workers)
    async with transaction(db.workers) as session:
        chunk = await chunks_store.get(session, sent.chunk_id)
        chunk.state, chunk.lease_owner, chunk.lease_expires_at = state, HOLDER, utcnow() + timedelta(minutes=1)
        await chunks_store.save(session, chunk)
    return sent


async def test_update_held_writes_only_in_the_expected_state_under_this_workers_lease(db: Database) -> None:
    sent = await held_chunk(db)
    async with transaction(db.workers) as session:
        assert not await chunks_store.update_held(session, OTHER, sent.chunk_id, ChunkState.PENDING, state="uploading")
        assert not await chunks_store.update_held(
            session, HOLDER, sent.chunk_id, ChunkState.SUBMITTED, state=ChunkState.DONE
        )
    assert (await one_row(db.api, Chunk, sent.chunk_id)).state == ChunkState.PENDING
    async with transaction(db.workers) as session:
        assert await chunks_store.update_held(
            session, HOLDER, sent.chunk_id, ChunkState.PENDING, state=ChunkState.UPLOADING, reserved=True
        )
    chunk = await one_row(db.api, Chunk, sent.chunk_id)
    assert (chunk.state, chunk.reserved) == (ChunkState.UPLOADING, True)


async def test_a_worker_whose_lease_was_taken_over_changes_nothing(db: Database) -> None:
    sent = await held_chunk(db, ChunkState.SUBMITTED)
    async with transaction(db.workers) as session:  # another worker took the chunk over meanwhile
        chunk = await chunks_store.get(session, sent.chunk_id)
        chunk.lease_owner = OTHER
        await chunks_store.save(session, chunk)
    before = await one_row(db.api, Chunk, sent.chunk_id)
    async with transaction(db.workers) as session:
        assert not await chunks_store.update_held(
            session, HOLDER, sent.chunk_id, ChunkState.SUBMITTED, state=ChunkState.DONE
        )
        await chunks_store.defer_held(
            session, HOLDER, sent.chunk_id, until=utcnow() + timedelta(hours=1), retry_count=9, error="late"
        )
    assert (await one_row(db.api, Chunk, sent.chunk_id)).model_dump() == before.model_dump()


async def test_defer_held_puts_the_chunk_off_and_keeps_the_error_bounded(db: Database) -> None:
    sent = await held_chunk(db, ChunkState.SUBMITTED)
    until = utcnow() + timedelta(seconds=30)
    async with transaction(db.workers) as session:
        await chunks_store.defer_held(session, HOLDER, sent.chunk_id, until=until, retry_count=3, error="x" * 5000)
    chunk = await one_row(db.api, Chunk, sent.chunk_id)
    assert (chunk.next_action_at, chunk.retry_count, chunk.last_error) == (until, 3, "x" * 2000)
    assert chunk.state == ChunkState.SUBMITTED


async def test_note_cancel_sent_makes_only_a_submitted_chunk_due_at_once(db: Database) -> None:
    later = utcnow() + timedelta(hours=1)
    sent = await seed(db.workers)
    async with transaction(db.workers) as session:
        await chunks_store.insert(
            session,
            [
                Chunk(
                    batch_id="lb_one",
                    pass_id=sent.pass_id,
                    chunk_index=1,
                    state=ChunkState.SUBMITTED,
                    next_action_at=later,
                ),
                Chunk(
                    batch_id="lb_one", pass_id=sent.pass_id, chunk_index=2, state=ChunkState.DONE, next_action_at=later
                ),
            ],
        )
    submitted, done = (await all_rows(db.api, Chunk, col(Chunk.id)))[1:]
    async with transaction(db.workers) as session:
        for chunk in (submitted, done):
            await chunks_store.note_cancel_sent(session, chunk.id or 0, "cancelling")
    submitted_after = await one_row(db.api, Chunk, submitted.id)
    assert submitted_after.provider_status == "cancelling" and submitted_after.next_action_at <= utcnow()
    assert submitted_after.cancel_sent_at is not None and submitted_after.cancel_sent_at <= utcnow()
    assert (await one_row(db.api, Chunk, done.id)).model_dump() == done.model_dump()


async def test_record_provider_state_stores_what_the_provider_said(db: Database) -> None:
    sent = await seed(db.workers)
    errors = [{"code": "invalid_request", "line": 3}]
    said = ProviderBatchInfo("batch_01", "in_progress", request_counts=RequestCounts(3, 2, 0), errors=errors)
    async with transaction(db.workers) as session:
        await chunks_store.record_provider_state(session, sent.chunk_id, said)
    chunk = await one_row(db.api, Chunk, sent.chunk_id)
    assert (chunk.provider_batch_id, chunk.provider_status, chunk.request_completed, chunk.provider_errors) == (
        "batch_01",
        "in_progress",
        2,
        errors,
    )


async def test_the_reads_of_a_step_find_the_chunk_its_pass_and_its_batch(db: Database) -> None:
    sent = await seed(db.workers)
    other = await seed(db.workers, "lb_two")
    async with transaction(db.workers) as session:
        await chunks_store.record_provider_state(session, sent.chunk_id, ProviderBatchInfo("batch_01", "validating"))
        await session.execute(update(Chunk).values(state=ChunkState.SUBMITTED))
    async with db.workers() as session:
        chunk, pass_, batch = await chunks_store.with_pass_and_batch(session, sent.chunk_id)
        assert (chunk.id, pass_.id, batch.id) == (sent.chunk_id, sent.pass_id, "lb_one")
        assert await chunks_store.log_fields(session, sent.chunk_id) == {
            "batch_id": "lb_one",
            "pass_number": 1,
            "provider_batch_id": "batch_01",
        }
        assert await chunks_store.log_fields(session, 999) == {}
        assert [(p.id, [c.id for c in chunks]) for p, chunks in await passes_store.with_chunks(session, "lb_one")] == [
            (sent.pass_id, [sent.chunk_id])
        ]
        assert [(c.id, p.id) for c, p in await chunks_store.to_cancel(session, "lb_one")] == [
            (sent.chunk_id, sent.pass_id)
        ]
        assert await chunks_store.to_cancel(session, other.batch_id) == []
