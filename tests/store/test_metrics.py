"""store.metrics on SQLite and PostgreSQL: the snapshot /metrics reports comes from the kept counters (batches by
status, items by status from the batches' counters and final failures by code, cost by model and pass kind,
chunks by state) and the age of the chunk overdue longest, whatever the items themselves say."""

from __future__ import annotations

from datetime import timedelta

import pytest

from service.kit.clock import utcnow
from service.models import BatchStatus, Chunk, ChunkState, PassKind
from service.store import Database, transaction
from service.store import batches as batches_store
from service.store import chunks as chunks_store
from service.store import metrics as metrics_store
from service.store import passes as passes_store
from service.store.metrics import DatabaseSnapshot
from service.store.passes import FINAL
from tests.store.rows import BIG_PICO, MODEL, STRONG_MODEL, seed, send_pass, update_chunk


async def snapshot(db: Database) -> DatabaseSnapshot:
    async with db.api() as session:
        return await metrics_store.read_snapshot(session)


async def test_an_empty_database_reports_zeroes(db: Database) -> None:
    assert await snapshot(db) == DatabaseSnapshot(
        batches={}, items={("succeeded", ""): 0, ("pending", ""): 0, ("retrying", ""): 0}, cost_pico={}, chunks={}
    )


async def test_the_snapshot_is_read_from_the_kept_counters(db: Database) -> None:
    running = await seed(db.workers, "lb_running", status=BatchStatus.RUNNING)
    done = await seed(db.workers, "lb_done", status=BatchStatus.COMPLETED)
    await seed(db.workers, "lb_queued", ("x",))
    now = utcnow()
    async with transaction(db.workers) as session:
        # Counters only: not one item row changes, and the snapshot follows the counters.
        await batches_store.add_to_counters(session, "lb_running", succeeded=1, pending=-2, retrying=1)
        await batches_store.add_to_counters(session, "lb_done", succeeded=2, pending=-3, failed=1)
        await passes_store.count_failures(session, "lb_running", FINAL, {"max_tokens": 2})
        await passes_store.count_failures(session, "lb_done", FINAL, {"max_tokens": 1, "timeout": 1})
        await passes_store.count_failures(session, "lb_done", done.pass_id, {"json_validate_failed": 5})
        second = await send_pass(session, "lb_running", {}, kind=PassKind.CASCADE, model=STRONG_MODEL, tier=1)
        await passes_store.add_to_counters(session, running.pass_id, cost_pico=BIG_PICO)
        await passes_store.add_to_counters(session, done.pass_id, cost_pico=BIG_PICO)
        await passes_store.add_to_counters(session, second.pass_id, cost_pico=3)
        await update_chunk(
            session, running.chunk_id, state=ChunkState.SUBMITTED, next_action_at=now - timedelta(seconds=30)
        )
        await update_chunk(session, done.chunk_id, state=ChunkState.DONE, next_action_at=now - timedelta(hours=1))
        await update_chunk(session, second.chunk_id, next_action_at=now + timedelta(hours=1))
    found = await snapshot(db)
    assert found.batches == {"running": 1, "completed": 1, "queued": 1}
    assert found.items == {
        ("succeeded", ""): 3,
        ("pending", ""): 1 + 0 + 1,
        ("retrying", ""): 1,
        ("failed", "max_tokens"): 3,
        ("failed", "timeout"): 1,
    }
    assert found.cost_pico == {(MODEL, "primary"): 2 * BIG_PICO, (STRONG_MODEL, "cascade"): 3}
    assert found.chunks == {"submitted": 1, "done": 1, "pending": 2}
    # lb_queued's chunk was due when it was seeded, a moment before `now`; lb_running's 30 s before it.
    assert found.oldest_due_seconds == pytest.approx(30, abs=5)


async def test_oldest_due_ignores_chunks_done_or_not_due_yet(db: Database) -> None:
    sent = await seed(db.workers)
    async with transaction(db.workers) as session:
        await update_chunk(session, sent.chunk_id, state=ChunkState.DONE, next_action_at=utcnow() - timedelta(hours=1))
        await chunks_store.insert(
            session,
            [
                Chunk(
                    batch_id="lb_one", pass_id=sent.pass_id, chunk_index=1, next_action_at=utcnow() + timedelta(hours=1)
                )
            ],
        )
    assert (await snapshot(db)).oldest_due_seconds == 0.0
