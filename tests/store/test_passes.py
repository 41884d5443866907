"""store.passes on SQLite and PostgreSQL: passes are numbered 1, 2, 3 per batch (a concurrent insert of the same
number is PassNumberTaken), lay-out and ingest add to the pass's counters in place, and the failure counts by code
are upserted (added to, rows created as needed), per pass and for the batch's final failures."""

from __future__ import annotations

import asyncio

import pytest

from service.kit.clock import utcnow
from service.models import Chunk, ChunkState, FailureCount, Pass, PassKind, PassStatus
from service.store import Database, transaction
from service.store import chunks as chunks_store
from service.store import passes as passes_store
from service.store.passes import FINAL, PassNumberTaken
from tests.store.rows import BIG_PICO, MODEL, STRONG_MODEL, add_batch, all_rows, meanwhile, one_row, seed, still_waiting


async def test_insert_numbers_each_batchs_passes_from_one(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one")
        await add_batch(session, "lb_two")
        one = [await passes_store.insert(session, "lb_one", kind=PassKind.PRIMARY, model=MODEL, tier=0)]
        two = await passes_store.insert(session, "lb_two", kind=PassKind.PRIMARY, model=MODEL, tier=0)
        one.append(await passes_store.insert(session, "lb_one", kind=PassKind.CASCADE, model=STRONG_MODEL, tier=1))
        one.append(
            await passes_store.insert(
                session, "lb_one", kind=PassKind.RETRY, model=STRONG_MODEL, selected_custom_ids=["a"], planned_items=1
            )
        )
    assert [p.number for p in one] == [1, 2, 3] and two.number == 1
    async with db.api() as session:
        stored = await passes_store.of_batch(session, "lb_one")
        assert (await passes_store.get(session, two.id or 0)).batch_id == "lb_two"
    assert [(p.number, p.kind, p.model, p.tier, p.status) for p in stored] == [
        (1, PassKind.PRIMARY, MODEL, 0, PassStatus.PLANNED),
        (2, PassKind.CASCADE, STRONG_MODEL, 1, PassStatus.PLANNED),
        (3, PassKind.RETRY, STRONG_MODEL, None, PassStatus.PLANNED),
    ]
    assert (stored[2].selected_custom_ids, stored[2].planned_items) == (["a"], 1)


async def test_a_pass_number_taken_by_a_concurrent_transaction_is_pass_number_taken(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one")
        await passes_store.insert(session, "lb_one", kind=PassKind.PRIMARY, model=MODEL)
    async with transaction(db.api) as first:
        assert (await passes_store.insert(first, "lb_one", kind=PassKind.RETRY, model=MODEL)).number == 2
        second = meanwhile(db.api, lambda s: passes_store.insert(s, "lb_one", kind=PassKind.RETRY, model=STRONG_MODEL))
        assert await still_waiting(second), "the second insert waits for the first transaction"
    with pytest.raises(PassNumberTaken):
        await second
    async with db.api() as session:
        assert [(p.number, p.model) for p in await passes_store.of_batch(session, "lb_one")] == [(1, MODEL), (2, MODEL)]


async def test_laid_out_sets_what_lay_out_decided_and_adds_its_counts(db: Database) -> None:
    sent = await seed(db.workers)
    async with transaction(db.workers) as session:
        await passes_store.add_to_counters(session, sent.pass_id, items=1)
        await passes_store.laid_out(
            session,
            sent.pass_id,
            status=PassStatus.RUNNING,
            sent_because={"first": 2, "json_validate_failed": 1},
            strict_mode=True,
            items=3,
            reused=1,
            saved_pico=0,
        )
    pass_ = await one_row(db.api, Pass, sent.pass_id)
    assert (pass_.status, pass_.sent_because, pass_.strict_mode) == (
        PassStatus.RUNNING,
        {"first": 2, "json_validate_failed": 1},
        True,
    )
    assert (pass_.items, pass_.reused, pass_.saved_pico) == (4, 1, 0)


async def test_add_to_counters_adds_in_place_and_refuses_other_names(db: Database) -> None:
    sent = await seed(db.workers)
    async with transaction(db.workers) as session:
        await passes_store.add_to_counters(session, sent.pass_id, succeeded=2, failed=1, cost_pico=BIG_PICO)
        await passes_store.add_to_counters(session, sent.pass_id, succeeded=1, output_tokens=9, input_tokens=0)
        for wrong in ({"planned_items": 1}, {"number": 0}, {"nonsense": 1}):
            with pytest.raises(ValueError, match="not a pass counter"):
                await passes_store.add_to_counters(session, sent.pass_id, **wrong)
    pass_ = await one_row(db.api, Pass, sent.pass_id)
    assert (pass_.succeeded, pass_.failed, pass_.cost_pico, pass_.output_tokens, pass_.planned_items) == (
        3,
        1,
        BIG_PICO,
        9,
        0,
    )


async def test_set_status_records_when_the_pass_finished(db: Database) -> None:
    sent = await seed(db.workers)
    finished = utcnow()
    async with transaction(db.workers) as session:
        await passes_store.set_status(session, sent.pass_id, PassStatus.RUNNING)
    running = await one_row(db.api, Pass, sent.pass_id)
    assert (running.status, running.finished_at) == (PassStatus.RUNNING, None)
    async with transaction(db.workers) as session:
        await passes_store.set_status(session, sent.pass_id, PassStatus.COMPLETED, finished_at=finished)
    pass_ = await one_row(db.api, Pass, sent.pass_id)
    assert (pass_.status, pass_.finished_at) == (PassStatus.COMPLETED, finished)


async def test_open_chunk_count_counts_the_chunks_not_done(db: Database) -> None:
    sent = await seed(db.workers)
    async with transaction(db.workers) as session:
        await chunks_store.insert(
            session,
            [
                Chunk(batch_id="lb_one", pass_id=sent.pass_id, chunk_index=n, state=state)
                for n, state in enumerate((ChunkState.SUBMITTED, ChunkState.DONE, ChunkState.UPLOADING), start=1)
            ],
        )
        assert await passes_store.open_chunk_count(session, sent.pass_id) == 3  # with seed's pending chunk
        assert await passes_store.open_chunk_count(session, sent.pass_id + 1) == 0


async def test_count_failures_adds_to_the_counts_and_creates_the_missing_ones(db: Database) -> None:
    sent = await seed(db.workers)
    async with transaction(db.workers) as session:
        await passes_store.count_failures(session, "lb_one", sent.pass_id, {"max_tokens": 2, "timeout": 0})
        await passes_store.count_failures(session, "lb_one", FINAL, {"max_tokens": 1})
    async with transaction(db.workers) as session:
        await passes_store.count_failures(session, "lb_one", sent.pass_id, {"max_tokens": 3, "json_validate_failed": 1})
        await passes_store.count_failures(session, "lb_one", sent.pass_id, {})
    async with db.api() as session:
        counts = await passes_store.failure_counts(session, "lb_one")
        assert await passes_store.failure_counts(session, "lb_missing") == {}
    assert counts == {sent.pass_id: {"max_tokens": 5, "json_validate_failed": 1}, FINAL: {"max_tokens": 1}}
    stored = await all_rows(db.api, FailureCount)
    assert sorted((row.pass_id, row.code) for row in stored) == sorted(
        [(sent.pass_id, "max_tokens"), (sent.pass_id, "json_validate_failed"), (FINAL, "max_tokens")]
    ), "a zero count is not stored"


async def test_concurrent_failure_counts_of_one_pass_add_up(db: Database) -> None:
    sent = await seed(db.workers)

    async def ingest(codes: dict[str, int]) -> None:
        async with transaction(db.workers) as session:
            await passes_store.count_failures(session, "lb_one", sent.pass_id, codes)

    await asyncio.gather(*(ingest({"max_tokens": 1, f"code_{n % 2}": 2}) for n in range(6)))
    async with db.api() as session:
        counts = await passes_store.failure_counts(session, "lb_one")
    assert counts == {sent.pass_id: {"max_tokens": 6, "code_0": 6, "code_1": 6}}


async def test_replace_final_failures_sets_the_final_counts_anew_and_leaves_the_passes(db: Database) -> None:
    sent = await seed(db.workers)
    async with transaction(db.workers) as session:
        await passes_store.count_failures(session, "lb_one", sent.pass_id, {"max_tokens": 4})
        await passes_store.count_failures(session, "lb_one", FINAL, {"max_tokens": 4, "timeout": 1})
    async with transaction(db.api) as session:
        await passes_store.replace_final_failures(session, "lb_one", {"timeout": 1, "cancelled": 2})
    async with db.api() as session:
        assert await passes_store.failure_counts(session, "lb_one") == {
            sent.pass_id: {"max_tokens": 4},
            FINAL: {"timeout": 1, "cancelled": 2},
        }
    async with transaction(db.api) as session:
        await passes_store.replace_final_failures(session, "lb_one", {})
    async with db.api() as session:
        assert await passes_store.failure_counts(session, "lb_one") == {sent.pass_id: {"max_tokens": 4}}
