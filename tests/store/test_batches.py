"""store.batches on SQLite and PostgreSQL: a batch goes in with its items all or nothing, reads stay within a
tenant, the status writes are conditional, and the kept counters are added to in place (never recomputed), with
budget reservations that never overshoot, even from concurrent transactions."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import col

from service.kit.clock import utcnow
from service.models import Batch, BatchStatus, Item, ItemBody, ItemStatus
from service.store import Database, transaction
from service.store import batches as batches_store
from service.store import items as items_store
from tests.store.rows import (
    add_batch,
    all_rows,
    in_transaction,
    items_by_custom_id,
    meanwhile,
    new_batch,
    one_row,
    scalar,
    still_waiting,
)


async def test_insert_batch_stores_every_item_in_submission_order(db: Database) -> None:
    count = batches_store.INSERT_ROWS + 3  # more than one INSERT statement's worth
    items = [(f"c{n}", f'{{"n": {n}}}'.encode(), b'{"tag": "x"}' if n % 2 else None, n % 3 == 0) for n in range(count)]
    before = utcnow()
    async with transaction(db.api) as session:
        assert await batches_store.insert_batch(session, new_batch("lb_big", count), iter(items)) == count
    stored = await all_rows(db.api, Item, col(Item.position))
    bodies: dict[int | None, str] = {body.item_id: body.body_json for body in await all_rows(db.api, ItemBody)}
    assert [(i.custom_id, i.position, bodies[i.id], i.metadata_json, i.own_format) for i in stored] == [
        (custom_id, n, body.decode(), metadata.decode() if metadata else None, own)
        for n, (custom_id, body, metadata, own) in enumerate(items)
    ]
    assert {(i.status, i.attempt_count, i.cost_pico, i.changed_pass, i.batch_id) for i in stored} == {
        (ItemStatus.PENDING, 0, 0, 0, "lb_big")
    }
    assert all(before <= i.updated_at <= utcnow() for i in stored)


async def test_insert_batch_is_all_or_nothing_in_the_callers_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with transaction(db.api) as session:
            await add_batch(session, "lb_gone")
            raise RuntimeError("the submission failed after its items were written")
    assert await all_rows(db.api, Batch) == []
    assert await all_rows(db.api, Item) == []
    assert await all_rows(db.api, ItemBody) == []


async def test_get_batch_hides_the_batches_of_other_tenants(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_acme", tenant="acme")
    async with db.api() as session:
        assert (await batches_store.get_batch(session, "lb_acme", "acme")) is not None
        assert await batches_store.get_batch(session, "lb_acme", "globex") is None
        assert (await batches_store.get_batch(session, "lb_acme")) is not None  # no tenant: any tenant's
        assert await batches_store.get_batch(session, "lb_missing") is None


async def test_get_batch_sees_counters_added_earlier_in_the_same_transaction(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one")
    async with transaction(db.workers) as session:
        loaded = await batches_store.get_batch(session, "lb_one")
        assert loaded is not None and loaded.succeeded == 0
        await batches_store.add_to_counters(session, "lb_one", succeeded=2, pending=-2)
        fresh = await batches_store.get_batch(session, "lb_one")
        assert fresh is not None and (fresh.succeeded, fresh.pending) == (2, 1)


async def test_list_batches_pages_newest_first_within_a_tenant_and_a_status(db: Database) -> None:
    async with transaction(db.api) as session:
        for n in range(5):
            await add_batch(session, f"lb_{n}", ("x",), tenant="acme", status=BatchStatus.QUEUED)
        await add_batch(session, "lb_9", ("x",), tenant="globex")
        await add_batch(session, "lb_5", ("x",), tenant="acme", status=BatchStatus.COMPLETED)
    async with db.api() as session:
        first, more = await batches_store.list_batches(session, tenant="acme", status=None, after=None, limit=4)
        assert ([b.id for b in first], more) == (["lb_5", "lb_4", "lb_3", "lb_2"], True)
        rest, more = await batches_store.list_batches(session, tenant="acme", status=None, after="lb_2", limit=4)
        assert ([b.id for b in rest], more) == (["lb_1", "lb_0"], False)
        queued, _ = await batches_store.list_batches(session, tenant="acme", status="queued", after=None, limit=9)
        assert [b.id for b in queued] == ["lb_4", "lb_3", "lb_2", "lb_1", "lb_0"]
        everyone, _ = await batches_store.list_batches(session, tenant=None, status=None, after=None, limit=9)
        assert [b.id for b in everyone] == ["lb_9", "lb_5", "lb_4", "lb_3", "lb_2", "lb_1", "lb_0"]


async def test_add_to_counters_adds_in_place_and_never_recomputes_from_the_items(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one", cost_pico=5, reserved_pico=40)
    async with transaction(db.workers) as session:
        await batches_store.add_to_counters(
            session, "lb_one", succeeded=2, pending=-3, retrying=1, cost_pico=7_000_000_000_000, reserved_pico=-40
        )
        await batches_store.add_to_counters(session, "lb_one", succeeded=1, input_tokens=0)
    batch = await one_row(db.api, Batch, "lb_one")
    assert (batch.succeeded, batch.pending, batch.retrying, batch.failed) == (3, 0, 1, 0)
    assert (batch.cost_pico, batch.reserved_pico, batch.input_tokens) == (7_000_000_000_005, 0, 0)
    # Not one item changed: the counters are what was added, not a count of the items.
    items = await items_by_custom_id(db.api, "lb_one")
    assert {item.status for item in items.values()} == {ItemStatus.PENDING}


async def test_concurrent_additions_to_the_counters_add_up(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one")
    async with transaction(db.workers) as first:
        await batches_store.add_to_counters(first, "lb_one", succeeded=2, output_tokens=10)
        other = meanwhile(
            db.workers, lambda session: batches_store.add_to_counters(session, "lb_one", succeeded=1, output_tokens=5)
        )
        assert await still_waiting(other), "the second write waits for the first transaction"
    await other
    batch = await one_row(db.api, Batch, "lb_one")
    assert (batch.succeeded, batch.output_tokens) == (3, 15)


async def test_add_to_counters_refuses_a_name_that_is_not_a_counter(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one")
    async with db.workers() as session:
        with pytest.raises(ValueError, match="item_count"):
            await batches_store.add_to_counters(session, "lb_one", item_count=1)
        with pytest.raises(ValueError, match="not_a_column"):
            await batches_store.add_to_counters(session, "lb_one", not_a_column=1)


async def test_reserve_refuses_what_would_pass_the_budget_counting_what_was_spent(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_capped", budget_pico=100, cost_pico=10)
        await add_batch(session, "lb_free", budget_pico=None)
    async with transaction(db.workers) as session:
        assert await batches_store.reserve(session, "lb_capped", 50)
        assert await batches_store.reserve(session, "lb_capped", 40)  # 10 + 50 + 40: exactly the budget
        assert not await batches_store.reserve(session, "lb_capped", 1)
        assert await batches_store.reserve(session, "lb_free", 7_000_000_000_000)
        assert not await batches_store.reserve(session, "lb_missing", 1)
    assert (await one_row(db.api, Batch, "lb_capped")).reserved_pico == 90
    assert (await one_row(db.api, Batch, "lb_free")).reserved_pico == 7_000_000_000_000


async def test_two_concurrent_reservations_never_overshoot_the_budget(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_capped", budget_pico=100)
    async with transaction(db.workers) as first:
        assert await batches_store.reserve(first, "lb_capped", 60)
        second = meanwhile(db.workers, lambda session: batches_store.reserve(session, "lb_capped", 60))
        assert await still_waiting(second), "the second reservation waits for the first to commit"
    assert not await second, "60 + 60 is past the budget of 100"
    assert (await one_row(db.api, Batch, "lb_capped")).reserved_pico == 60


async def test_many_concurrent_reservations_take_exactly_what_fits(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_capped", budget_pico=100)

    granted = await asyncio.gather(
        *(in_transaction(db.workers, lambda s: batches_store.reserve(s, "lb_capped", 15)) for _ in range(8))
    )
    assert sorted(granted) == [False, False, True, True, True, True, True, True]
    assert (await one_row(db.api, Batch, "lb_capped")).reserved_pico == 90


async def test_request_cancel_marks_only_an_open_batch(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_open", status=BatchStatus.RUNNING)
        await add_batch(session, "lb_done", status=BatchStatus.COMPLETED)
    async with transaction(db.api) as session:
        assert await batches_store.request_cancel(session, "lb_open")
        assert not await batches_store.request_cancel(session, "lb_done")
    async with db.api() as session:
        assert await batches_store.cancel_requested(session, "lb_open")
        assert not await batches_store.cancel_requested(session, "lb_done")
        assert not await batches_store.cancel_requested(session, "lb_missing")


async def test_reopen_runs_a_finished_batch_again_only_from_the_status_it_was_read_in(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_done", status=BatchStatus.FAILED, cancel_requested=True, finished_at=utcnow())
    async with transaction(db.api) as session:
        assert not await batches_store.reopen(session, "lb_done", BatchStatus.COMPLETED)
    assert (await one_row(db.api, Batch, "lb_done")).status == BatchStatus.FAILED
    async with transaction(db.api) as session:
        assert await batches_store.reopen(session, "lb_done", BatchStatus.FAILED)
    batch = await one_row(db.api, Batch, "lb_done")
    assert (batch.status, batch.cancel_requested, batch.finished_at) == (BatchStatus.RUNNING, False, None)


async def test_fence_open_batch_matches_only_the_lease_holder_of_an_open_batch(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_open", status=BatchStatus.RUNNING, lease_owner="worker-1")
        await add_batch(session, "lb_done", status=BatchStatus.CANCELLED, lease_owner="worker-1")
    async with transaction(db.workers) as session:
        assert await batches_store.fence_open_batch(session, "lb_open", "worker-1")
        assert not await batches_store.fence_open_batch(session, "lb_open", "worker-2")
        assert not await batches_store.fence_open_batch(session, "lb_done", "worker-1")


async def test_set_status_releases_the_lease_only_when_asked(db: Database) -> None:
    finished = utcnow()
    async with transaction(db.api) as session:
        for batch_id in ("lb_kept", "lb_released"):
            await add_batch(session, batch_id, lease_owner="worker-1", lease_expires_at=finished)
    async with transaction(db.workers) as session:
        await batches_store.set_status(session, "lb_kept", BatchStatus.RUNNING)
        await batches_store.set_status(
            session, "lb_released", BatchStatus.COMPLETED, finished_at=finished, release=True
        )
    kept, released = await one_row(db.api, Batch, "lb_kept"), await one_row(db.api, Batch, "lb_released")
    assert (kept.status, kept.lease_owner, kept.lease_expires_at, kept.finished_at) == (
        BatchStatus.RUNNING,
        "worker-1",
        finished,
        None,
    )
    assert (released.status, released.lease_owner, released.lease_expires_at, released.finished_at) == (
        BatchStatus.COMPLETED,
        None,
        None,
        finished,
    )


async def test_add_warning_keeps_each_warning_once(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one", warnings=["first"])
    async with transaction(db.api) as session:
        await batches_store.add_warning(session, "lb_one", "second")
        await batches_store.add_warning(session, "lb_one", "first")
        await batches_store.add_warning(session, "lb_one", "second")
        await batches_store.add_warning(session, "lb_missing", "nowhere")
    assert (await one_row(db.api, Batch, "lb_one")).warnings == ["first", "second"]


@pytest.mark.postgres
async def test_a_bulk_submission_leaves_postgresql_the_statistics_of_its_items(pg_db: Database) -> None:
    """Before the first pass reads them: without, PostgreSQL read the whole batch for every page it laid out."""
    reltuples = "SELECT reltuples FROM pg_class WHERE relname = 'items'"
    async with transaction(pg_db.api) as session:
        await add_batch(session, "lb_small", [f"c{n}" for n in range(items_store.BULK_LOAD_ROWS - 1)])
    assert await scalar(pg_db.api, reltuples) == -1
    async with transaction(pg_db.api) as session:
        await add_batch(session, "lb_bulk", [f"c{n}" for n in range(items_store.BULK_LOAD_ROWS)])
    assert await scalar(pg_db.api, reltuples) == 2 * items_store.BULK_LOAD_ROWS - 1


async def test_raise_budget_only_raises_an_open_batchs_budget(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_open", budget_pico=100, status=BatchStatus.RUNNING)
        await add_batch(session, "lb_done", budget_pico=100, status=BatchStatus.COMPLETED)
    async with transaction(db.api) as session:
        assert not await batches_store.raise_budget(session, "lb_open", 99), "a running budget never goes down"
        assert await batches_store.raise_budget(session, "lb_open", 150)
        assert await batches_store.raise_budget(session, "lb_open", 150), "the same value again is no change"
        assert not await batches_store.raise_budget(session, "lb_done", 200), "a finished batch is set, not raised"
        assert await batches_store.set_finished_budget(session, "lb_done", 20, BatchStatus.COMPLETED)
        assert not await batches_store.set_finished_budget(session, "lb_done", 30, BatchStatus.FAILED)
    assert (await one_row(db.api, Batch, "lb_open")).budget_pico == 150
    assert (await one_row(db.api, Batch, "lb_done")).budget_pico == 20
    async with transaction(db.api) as session:
        assert await batches_store.raise_budget(session, "lb_open", None), "no budget is above any budget"
        assert not await batches_store.raise_budget(session, "lb_open", 500), "nor can one come back while it runs"
    assert (await one_row(db.api, Batch, "lb_open")).budget_pico is None


async def test_a_raise_waits_for_a_reservation_and_never_lowers_under_it(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_capped", budget_pico=100, status=BatchStatus.RUNNING)
    async with transaction(db.workers) as first:
        assert await batches_store.reserve(first, "lb_capped", 90)
        raising = meanwhile(db.api, lambda session: batches_store.raise_budget(session, "lb_capped", 200))
        assert await still_waiting(raising), "the raise waits for the reservation's transaction"
    assert await raising
    batch = await one_row(db.api, Batch, "lb_capped")
    assert (batch.budget_pico, batch.reserved_pico) == (200, 90)
