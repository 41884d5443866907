"""store.leases on SQLite and PostgreSQL: a claim takes the row due longest that nobody holds, a lease held by
another owner is not taken until it expires, only the holder renews or releases it, concurrent claimers never
take one row; on PostgreSQL a row locked by a claim in progress is skipped (FOR UPDATE SKIP LOCKED), not waited
for, so two claims at once take different rows."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from service.kit.clock import utcnow
from service.models import Batch, BatchStatus, Chunk, ChunkState, PassKind, WebhookDelivery, WebhookState
from service.store import Database, transaction
from service.store import chunks as chunks_store
from service.store import leases as leases_store
from service.store import passes as passes_store
from tests.store.rows import add_batch, add_delivery, all_rows, one_row

PENDING = (ChunkState.PENDING,)
W1, W2 = "worker-1", "worker-2"
LONG = 60.0


async def add_chunks(db: Database, chunks: Sequence[tuple[str, float]], **values: Any) -> list[int]:
    """Chunks of one pass: (state, seconds from now it is due), in that order; their ids."""
    now = utcnow()
    async with transaction(db.workers) as session:
        if await session.get(Batch, "lb_one") is None:
            await add_batch(session, "lb_one")
        pass_ = await passes_store.insert(session, "lb_one", kind=PassKind.PRIMARY, model="m")
        assert pass_.id is not None
        rows = [
            Chunk(
                batch_id="lb_one",
                pass_id=pass_.id,
                chunk_index=index,
                state=state,
                next_action_at=now + timedelta(seconds=due),
                **values,
            )
            for index, (state, due) in enumerate(chunks)
        ]
        await chunks_store.insert(session, rows)
    return [row.id for row in rows if row.id is not None]


async def claim(db: Database, owner: str, lease_seconds: float = LONG, states: Sequence[str] = PENDING) -> int | None:
    claimed = await leases_store.claim_next_chunk(db.workers, owner, lease_seconds, states)
    return None if claimed is None else claimed[0]


async def test_claim_next_chunk_takes_the_chunk_due_longest_in_the_asked_states(db: Database) -> None:
    soon, oldest, submitted, future, done = await add_chunks(
        db,
        [
            (ChunkState.PENDING, -10),
            (ChunkState.PENDING, -20),
            (ChunkState.SUBMITTED, -30),
            (ChunkState.PENDING, 60),
            (ChunkState.DONE, -40),
        ],
    )
    assert [await claim(db, W1), await claim(db, W1), await claim(db, W1)] == [oldest, soon, None]
    assert await claim(db, W2, states=(ChunkState.SUBMITTED, ChunkState.PENDING)) == submitted
    leased = {chunk.id: chunk.lease_owner for chunk in await all_rows(db.api, Chunk)}
    assert leased == {soon: W1, oldest: W1, submitted: W2, future: None, done: None}


async def test_files_left_claims_only_chunks_whose_files_are_not_deleted(db: Database) -> None:
    (cleaned,) = await add_chunks(db, [(ChunkState.DONE, -20)], files_deleted_at=utcnow())
    (left,) = await add_chunks(db, [(ChunkState.DONE, -10)])
    claimed = await leases_store.claim_next_chunk(db.workers, W1, LONG, (ChunkState.DONE,), files_left=True)
    assert claimed == (left, "groq"), "a chunk and its provider"
    assert await leases_store.claim_next_chunk(db.workers, W1, LONG, (ChunkState.DONE,), files_left=True) is None
    assert await leases_store.claim_next_chunk(db.workers, W1, LONG, (ChunkState.DONE,)) == (cleaned, "groq")


async def test_a_paused_providers_chunks_are_not_claimed_and_not_due(db: Database) -> None:
    """An outage of one provider pauses its chunks only: the others' are claimed and due as before."""
    (on_groq,) = await add_chunks(db, [(ChunkState.PENDING, -20)])
    (on_openai,) = await add_chunks(db, [(ChunkState.PENDING, -10)], provider="openai")
    kinds = [((ChunkState.PENDING,), False)]
    assert await leases_store.next_chunk_due(db.workers, kinds, skip_providers={"groq", "openai"}) is None
    due = await leases_store.next_chunk_due(db.workers, kinds, skip_providers={"groq"})
    assert due is not None and due < utcnow()
    paused = {"groq"}
    assert await leases_store.claim_next_chunk(db.workers, W1, LONG, PENDING, skip_providers=paused) == (
        on_openai,
        "openai",
    )
    assert await leases_store.claim_next_chunk(db.workers, W1, LONG, PENDING, skip_providers=paused) is None
    assert await claim(db, W1) == on_groq


async def test_next_chunk_due_is_the_first_time_a_chunk_of_the_kinds_can_be_claimed(db: Database) -> None:
    kinds = [(PENDING, False), ((ChunkState.DONE,), True)]
    assert await leases_store.next_chunk_due(db.workers, kinds) is None
    await add_chunks(db, [(ChunkState.SUBMITTED, -30), (ChunkState.DONE, -20)], files_deleted_at=utcnow())
    assert await leases_store.next_chunk_due(db.workers, kinds) is None, "other states, files already deleted"
    later, sooner = await add_chunks(db, [(ChunkState.PENDING, 40), (ChunkState.DONE, 20)])
    due = await leases_store.next_chunk_due(db.workers, kinds)
    chunks = {chunk.id: chunk for chunk in await all_rows(db.api, Chunk)}
    assert isinstance(due, datetime) and due == chunks[sooner].next_action_at
    async with transaction(db.workers) as session:  # held past its due time: claimable when the lease ends
        held = await session.get(Chunk, sooner)
        assert held is not None
        held.lease_owner, held.lease_expires_at = W2, utcnow() + timedelta(seconds=60)
    assert await leases_store.next_chunk_due(db.workers, kinds) == chunks[later].next_action_at
    assert (
        await leases_store.next_chunk_due(db.workers, [((ChunkState.DONE,), True)])
        == (await one_row(db.api, Chunk, sooner)).lease_expires_at
    )


async def test_a_lease_held_by_another_owner_is_not_taken_until_it_expires(db: Database) -> None:
    (chunk_id,) = await add_chunks(db, [(ChunkState.PENDING, -1)])
    before = utcnow()
    assert await claim(db, W1, lease_seconds=0.3) == chunk_id
    chunk = await one_row(db.api, Chunk, chunk_id)
    assert before + timedelta(seconds=0.3) <= (chunk.lease_expires_at or before) <= utcnow() + timedelta(seconds=0.3)
    assert await claim(db, W2) is None
    assert not await leases_store.claim(db.workers, Chunk, chunk_id, W2, LONG)
    await asyncio.sleep(0.4)
    assert await claim(db, W2) == chunk_id
    async with db.api() as session:
        assert await leases_store.owner_of(session, Chunk, chunk_id) == W2


async def test_renew_extends_only_the_holders_lease(db: Database) -> None:
    (chunk_id,) = await add_chunks(db, [(ChunkState.PENDING, -1)])
    assert await claim(db, W1, lease_seconds=5) == chunk_id
    first = (await one_row(db.api, Chunk, chunk_id)).lease_expires_at
    async with transaction(db.workers) as session:
        assert not await leases_store.renew(session, Chunk, chunk_id, W2, LONG)
        assert await leases_store.renew(session, Chunk, chunk_id, W1, LONG)
    renewed = await one_row(db.api, Chunk, chunk_id)
    assert renewed.lease_owner == W1 and first is not None and renewed.lease_expires_at is not None
    assert renewed.lease_expires_at >= first + timedelta(seconds=LONG - 5)


async def test_release_frees_only_the_holders_lease(db: Database) -> None:
    (chunk_id,) = await add_chunks(db, [(ChunkState.PENDING, -1)])
    assert await claim(db, W1) == chunk_id
    await leases_store.release(db.workers, Chunk, chunk_id, W2)
    assert (await one_row(db.api, Chunk, chunk_id)).lease_owner == W1
    await leases_store.release(db.workers, Chunk, chunk_id, W1)
    chunk = await one_row(db.api, Chunk, chunk_id)
    assert (chunk.lease_owner, chunk.lease_expires_at) == (None, None)
    assert await claim(db, W2) == chunk_id


async def delivery_due(db: Database, message_id: str, due: datetime, state: str = WebhookState.PENDING) -> int:
    async with transaction(db.workers) as session:
        return await add_delivery(
            session, "lb_one", message_id, state=state, next_attempt_at=due, attempts=2, schedule_attempts=1
        )


async def test_release_everything_frees_whatever_the_owner_holds_in_every_table(db: Database) -> None:
    mine, theirs = await add_chunks(db, [(ChunkState.PENDING, -2), (ChunkState.PENDING, -1)])
    assert (await claim(db, W1), await claim(db, W2)) == (mine, theirs)
    assert await leases_store.claim(db.workers, Batch, "lb_one", W1, LONG)
    delivery_id = await delivery_due(db, "msg_1", utcnow())
    assert await leases_store.claim(db.workers, WebhookDelivery, delivery_id, W1, LONG)
    await leases_store.release_everything(db.workers, W1)
    async with db.api() as session:
        owners = [
            await leases_store.owner_of(session, table, row_id)
            for table, row_id in (
                (Chunk, mine),
                (Chunk, theirs),
                (Batch, "lb_one"),
                (WebhookDelivery, delivery_id),
            )
        ]
    assert owners == [None, W2, None, None]


async def test_claim_takes_a_free_row_its_own_again_or_one_whose_lease_expired(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one")
    assert await leases_store.claim(db.workers, Batch, "lb_one", W1, 0.3)
    assert not await leases_store.claim(db.workers, Batch, "lb_one", W2, LONG)
    assert await leases_store.claim(db.workers, Batch, "lb_one", W1, 0.3), "the holder may claim it again"
    assert not await leases_store.claim(db.workers, Batch, "lb_missing", W1, LONG)
    await asyncio.sleep(0.4)
    assert await leases_store.claim(db.workers, Batch, "lb_one", W2, LONG)
    assert (await one_row(db.api, Batch, "lb_one")).lease_owner == W2


async def test_claim_next_batch_takes_the_oldest_open_batch_nobody_holds_and_not_skipped(db: Database) -> None:
    now = utcnow()
    async with transaction(db.api) as session:
        for batch_id, status, minutes in (
            ("lb_done", BatchStatus.COMPLETED, -40),
            ("lb_old", BatchStatus.RUNNING, -30),
            ("lb_mid", BatchStatus.QUEUED, -20),
            ("lb_new", BatchStatus.QUEUED, -10),
        ):
            await add_batch(session, batch_id, ("x",), status=status, created_at=now + timedelta(minutes=minutes))
    assert await leases_store.claim_next_batch(db.workers, W1, LONG) == "lb_old"
    assert await leases_store.claim_next_batch(db.workers, W2, LONG, skip=["lb_mid"]) == "lb_new"
    assert await leases_store.claim_next_batch(db.workers, W2, LONG, skip=["lb_mid"]) is None
    assert await leases_store.claim_next_batch(db.workers, W2, LONG) == "lb_mid"
    assert await leases_store.claim_next_batch(db.workers, W2, LONG) is None


async def test_claim_next_delivery_takes_the_pending_delivery_due_longest(db: Database) -> None:
    now = utcnow()
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one")
    await delivery_due(db, "msg_delivered", now - timedelta(minutes=9), WebhookState.DELIVERED)
    later = await delivery_due(db, "msg_later", now - timedelta(minutes=1))
    first = await delivery_due(db, "msg_first", now - timedelta(minutes=2))
    await delivery_due(db, "msg_future", now + timedelta(minutes=1))
    claimed = await leases_store.claim_next_delivery(db.workers, W1, LONG)
    assert claimed == (first, "msg_first", "https://example.test/hook", '{"type": "batch.completed"}', 2, 1)
    second = await leases_store.claim_next_delivery(db.workers, W2, LONG)
    assert second is not None and second[0] == later
    assert await leases_store.claim_next_delivery(db.workers, W2, LONG) is None


async def test_concurrent_claimers_never_take_the_same_chunk(db: Database) -> None:
    chunk_ids = await add_chunks(db, [(ChunkState.PENDING, -1)] * 24)

    async def drain(owner: str) -> list[int]:
        taken = []
        while (chunk_id := await claim(db, owner)) is not None:
            taken.append(chunk_id)
        return taken

    claimed = await asyncio.gather(*(drain(f"worker-{n}") for n in range(4)))
    counts = Counter(chunk_id for taken in claimed for chunk_id in taken)
    assert sorted(counts) == chunk_ids and set(counts.values()) == {1}
    owners = {chunk.id: chunk.lease_owner for chunk in await all_rows(db.api, Chunk)}
    assert all(owners[chunk_id] == f"worker-{n}" for n, taken in enumerate(claimed) for chunk_id in taken)


@pytest.mark.postgres
async def test_a_chunk_locked_by_a_claim_in_progress_is_skipped_not_waited_for(pg_db: Database) -> None:
    first, second = await add_chunks(pg_db, [(ChunkState.PENDING, -2), (ChunkState.PENDING, -1)])
    async with transaction(pg_db.workers) as claiming:
        locked = await claiming.scalar(select(Chunk.id).where(col(Chunk.id) == first).with_for_update())
        assert locked == first
        assert await asyncio.wait_for(claim(pg_db, W2), timeout=2) == second
        assert await asyncio.wait_for(claim(pg_db, W2), timeout=2) is None
    assert await claim(pg_db, W1) == first


@pytest.mark.postgres
async def test_two_claims_at_once_take_different_chunks(pg_db: Database) -> None:
    chunk_ids = await add_chunks(pg_db, [(ChunkState.PENDING, -1)] * 2)
    for _round in range(5):
        claimed = await asyncio.gather(claim(pg_db, W1), claim(pg_db, W2))
        assert sorted(c for c in claimed if c is not None) == chunk_ids, claimed
        for owner in (W1, W2):
            await leases_store.release_everything(pg_db.workers, owner)
