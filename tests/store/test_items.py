"""store.items on SQLite and PostgreSQL: which items a pass takes (never sent, or queued for its tier or for a
retry), the merged rows written in bulk by the driver (datetimes, NULLs and large sums read back equal, counts
added in place), failing what will not be sent, queueing a retry, and the codes of the final failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from service.kit.clock import utcnow
from service.models import Attempt, Item, ItemStatus, PassKind
from service.store import Database, transaction
from service.store import attempts as attempts_store
from service.store import items as items_store
from service.store.items import RETRY_QUEUE
from tests.store.rows import (
    BIG_PICO,
    SUCCESS,
    Outcome,
    add_batch,
    body,
    decide_all,
    failure,
    is_postgres,
    items_by_custom_id,
    merged_row,
    one_row,
    pending_row,
    scalar,
    seed,
    send_pass,
)

FIVE = ("a", "b", "c", "d", "e")


async def queue(db: Database, batch_id: str, queued: dict[str, tuple[int | None, str | None]]) -> None:
    """Items the cascade (or a retry) queued: custom_id -> (next tier, next reason)."""
    async with transaction(db.workers) as session:
        for custom_id, (tier, reason) in queued.items():
            await session.execute(
                update(Item)
                .where(col(Item.batch_id) == batch_id, col(Item.custom_id) == custom_id)
                .values(status=ItemStatus.RETRYING, next_tier=tier, next_reason=reason)
            )


async def test_find_and_status_counts_read_one_batchs_items(db: Database) -> None:
    async with transaction(db.api) as session:
        ids = await add_batch(session, "lb_one")
        await add_batch(session, "lb_two", ("a",))
    await queue(db, "lb_one", {"b": (1, "escalated"), "c": (1, "escalated")})
    async with db.api() as session:
        found = await items_store.find(session, "lb_one", "a")
        assert found is not None and found.id == ids["a"]
        assert await items_store.find(session, "lb_one", "zz") is None
        assert await items_store.status_counts(session, "lb_one") == {"pending": 1, "retrying": 2}


async def test_first_pass_items_are_the_pending_items_never_sent_in_submission_order(db: Database) -> None:
    async with transaction(db.api) as session:
        ids = await add_batch(session, "lb_one", ("z", "y", "x", "w", "u"))
        await add_batch(session, "lb_other", ("v",))
        await send_pass(session, "lb_one", {"y": ids["y"]})  # y is in flight
    await queue(db, "lb_one", {"w": (1, "escalated")})
    async with db.workers() as session:
        rows = await items_store.first_pass_items(session, "lb_one", after_position=-1, limit=10)
        page = await items_store.first_pass_items(session, "lb_one", after_position=0, limit=1)
    assert [(row.id, row.position, row.custom_id, row.body_json, row.own_format) for row in rows] == [
        (ids["z"], 0, "z", body("z").decode(), False),
        (ids["x"], 2, "x", body("x").decode(), False),
        (ids["u"], 4, "u", body("u").decode(), False),
    ]
    assert [row.custom_id for row in page] == ["x"]


async def test_first_pass_pages_laid_out_one_after_another_take_every_item_once(db: Database) -> None:
    custom_ids = [f"c{n:02d}" for n in range(23)]
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one", custom_ids)
        sent = await send_pass(session, "lb_one", {})
    taken: list[str] = []
    after = -1
    while True:  # as lay-out does: each page gets its attempts before the next page is read
        async with transaction(db.workers) as session:
            page = await items_store.first_pass_items(session, "lb_one", after_position=after, limit=5)
            if not page:
                break
            await attempts_store.insert_rows(
                session, [pending_row(row.id, sent.pass_id, sent.chunk_id) for row in page]
            )
        taken += [row.custom_id for row in page]
        after = page[-1].position
    assert taken == custom_ids


async def test_the_cascade_queue_and_the_retry_queue_are_read_apart_a_page_at_a_time(db: Database) -> None:
    async with transaction(db.api) as session:
        await add_batch(session, "lb_one", FIVE)
    await queue(db, "lb_one", {"e": (1, "escalated"), "b": (1, "escalated"), "c": (2, "resent"), "d": (1, RETRY_QUEUE)})
    async with db.workers() as session:
        tier_one = await items_store.queued_items(session, "lb_one", tier=1, retry=False, after_position=-1, limit=9)
        first = await items_store.queued_items(session, "lb_one", tier=1, retry=False, after_position=-1, limit=1)
        rest = await items_store.queued_items(session, "lb_one", tier=1, retry=False, after_position=1, limit=9)
        retry = await items_store.queued_items(session, "lb_one", tier=None, retry=True, after_position=-1, limit=9)
        tiers = await items_store.queued_tiers(session, "lb_one")
    assert [(row.custom_id, row.position, row.next_reason) for row in tier_one] == [
        ("b", 1, "escalated"),
        ("e", 4, "escalated"),
    ]
    assert ([row.custom_id for row in first], [row.custom_id for row in rest]) == (["b"], ["e"])
    assert [row.custom_id for row in retry] == ["d"]
    assert tiers == {1: 2, 2: 1}, "a retry's queue is not a tier's"


async def test_clear_queue_takes_only_the_given_items_off_the_queue(db: Database) -> None:
    custom_ids = [f"c{n}" for n in range(items_store.IDS_PER_STATEMENT + 10)]
    async with transaction(db.api) as session:
        ids = await add_batch(session, "lb_big", custom_ids)
    async with transaction(db.workers) as session:
        await session.execute(
            update(Item).values(status=ItemStatus.RETRYING, next_tier=1, next_reason="x", next_overrides_json="{}")
        )
    taken = [ids[custom_id] for custom_id in custom_ids[:-1]]
    async with transaction(db.workers) as session:
        await items_store.clear_queue(session, taken)
    items = await items_by_custom_id(db.api, "lb_big")
    cleared = {
        c for c, item in items.items() if (item.next_tier, item.next_reason, item.next_overrides_json) == (None,) * 3
    }
    assert cleared == set(custom_ids[:-1])
    assert (items[custom_ids[-1]].next_tier, items[custom_ids[-1]].next_reason) == (1, "x")


async def test_merge_writes_each_items_row_and_reads_back_equal(db: Database) -> None:
    sent = await seed(db.workers, custom_ids=("a", "b"))
    written = utcnow().replace(microsecond=123_456)
    async with transaction(db.workers) as session:
        await items_store.merge(
            session,
            [
                merged_row(sent.items["a"], sent.attempts["a"], Outcome(cost_pico=BIG_PICO), 1, written)._replace(
                    next_overrides_json='{"max_completion_tokens": 2048}'
                ),
                merged_row(
                    sent.items["b"],
                    None,
                    Outcome(item_status=ItemStatus.RETRYING, next_tier=1, next_reason="escalated", cost_pico=0),
                    3,
                    written + timedelta(days=400),
                )._replace(error_code="cancelled", error_message="ünïcode ✓"),
            ],
        )
    items = await items_by_custom_id(db.api, "lb_one")
    a, b = items["a"], items["b"]
    assert (a.status, a.deciding_attempt_id, a.attempt_count, a.cost_pico, a.changed_pass, a.updated_at) == (
        ItemStatus.SUCCEEDED,
        sent.attempts["a"],
        1,
        BIG_PICO,
        1,
        written,
    )
    assert (a.next_tier, a.next_reason, a.next_overrides_json, a.error_code, a.error_message) == (
        None,
        None,
        '{"max_completion_tokens": 2048}',
        None,
        None,
    )
    assert (b.status, b.deciding_attempt_id, b.next_tier, b.next_reason, b.changed_pass) == (
        ItemStatus.RETRYING,
        None,
        1,
        "escalated",
        3,
    )
    assert (b.error_code, b.error_message, b.updated_at) == ("cancelled", "ünïcode ✓", written + timedelta(days=400))


async def test_merge_adds_attempts_and_cost_to_what_the_item_had(db: Database) -> None:
    sent = await seed(db.workers, custom_ids=("a",))
    for cost in (BIG_PICO, 5):
        async with transaction(db.workers) as session:
            await items_store.merge(
                session, [merged_row(sent.items["a"], sent.attempts["a"], Outcome(cost_pico=cost), 1, utcnow())]
            )
    item = (await items_by_custom_id(db.api, "lb_one"))["a"]
    assert (item.attempt_count, item.cost_pico) == (2, BIG_PICO + 5)


async def test_merge_of_nothing_writes_nothing(db: Database) -> None:
    sent = await seed(db.workers, custom_ids=("a",))
    async with transaction(db.workers) as session:
        await items_store.merge(session, [])
    assert (await one_row(db.api, Item, sent.items["a"])).status == ItemStatus.PENDING


async def test_fail_unstarted_fails_only_what_no_pass_will_send(db: Database) -> None:
    async with transaction(db.api) as session:
        ids = await add_batch(session, "lb_one", FIVE)
        await send_pass(session, "lb_one", {"a": ids["a"], "b": ids["b"]})
    await queue(db, "lb_one", {"b": (None, None), "c": (1, "escalated"), "d": (None, RETRY_QUEUE)})
    # a: in flight (pending, sent); b: retrying in flight; c: queued for tier 1; d: queued for a retry; e: never sent
    async with transaction(db.workers) as session:
        counts = await items_store.fail_unstarted(session, "lb_one", "cancelled", "cancelled before it was sent")
    assert counts == (1, 2)
    items = await items_by_custom_id(db.api, "lb_one")
    failed = {c for c, item in items.items() if item.status == ItemStatus.FAILED}
    assert failed == {"c", "d", "e"}
    assert {(items[c].error_code, items[c].next_tier, items[c].next_reason) for c in failed} == {
        ("cancelled", None, None)
    }
    assert (items["a"].status, items["b"].status) == (ItemStatus.PENDING, ItemStatus.RETRYING)


async def test_queue_retry_takes_back_the_failed_items_asked_for(db: Database) -> None:
    sent = await seed(db.workers, custom_ids=FIVE)
    await decide_all(
        db.workers, sent, {"a": failure("max_tokens"), "b": failure("timeout"), "c": SUCCESS, "d": failure("x")}
    )
    async with transaction(db.workers) as session:
        await session.execute(update(Item).where(col(Item.custom_id) == "d").values(error_code="cancelled"))
    async with db.api() as session:
        assert await items_store.failed_custom_ids(session, "lb_one", None) == {"a", "b", "d"}
        assert await items_store.failed_custom_ids(session, "lb_one", ["a", "c", "zz"]) == {"a"}
        checked = [row async for row in items_store.failed_for_check(session, "lb_one")]
    assert sorted(checked) == [(c, body(c).decode()) for c in ("a", "b", "d")]
    async with transaction(db.api) as session:
        assert await items_store.queue_retry(session, "lb_one", ["a", "c", "d"], 1) == 2
    items = await items_by_custom_id(db.api, "lb_one")
    assert {c: (i.status, i.next_tier, i.next_reason, i.error_code) for c, i in items.items()} == {
        "a": (ItemStatus.RETRYING, 1, RETRY_QUEUE, None),
        "b": (ItemStatus.FAILED, None, None, None),
        "c": (ItemStatus.SUCCEEDED, None, None, None),
        "d": (ItemStatus.RETRYING, 1, RETRY_QUEUE, None),
        "e": (ItemStatus.PENDING, None, None, None),
    }
    async with transaction(db.api) as session:
        assert await items_store.queue_retry(session, "lb_one", None, None) == 1
    assert (await items_by_custom_id(db.api, "lb_one"))["b"].next_reason == RETRY_QUEUE


async def test_final_failure_codes_count_the_items_own_code_else_their_deciding_attempts(db: Database) -> None:
    sent = await seed(db.workers, custom_ids=FIVE)
    await decide_all(
        db.workers,
        sent,
        {
            "a": failure("json_validate_failed"),
            "b": failure("json_validate_failed"),
            "c": failure("max_tokens", item_status=ItemStatus.RETRYING),  # not final
            "d": failure("timeout"),
            "e": SUCCESS,
        },
    )
    async with transaction(db.workers) as session:
        await session.execute(update(Item).where(col(Item.custom_id) == "d").values(error_code="budget_exceeded"))
        await session.execute(
            update(Item).where(col(Item.custom_id) == "e").values(status=ItemStatus.FAILED, deciding_attempt_id=None)
        )
    async with db.api() as session:
        codes = await items_store.final_failure_codes(session, "lb_one")
    assert codes == {"json_validate_failed": 2, "budget_exceeded": 1, "unknown": 1}


async def test_bodies_reads_every_asked_item_past_one_statements_parameters(db: Database) -> None:
    custom_ids = [f"c{n}" for n in range(items_store.IDS_PER_STATEMENT * 2 + 1)]
    async with transaction(db.api) as session:
        ids = await add_batch(session, "lb_big", custom_ids)
    async with db.workers() as session:
        found = await items_store.bodies(session, [ids[c] for c in custom_ids[1:]])
        assert await items_store.bodies(session, []) == {}
    assert found == {ids[c]: body(c).decode() for c in custom_ids[1:]}


async def test_stream_for_chunk_yields_the_chunks_lines_in_submission_order(db: Database) -> None:
    async with transaction(db.api) as session:
        ids = await add_batch(session, "lb_one", ("p", "q", "r", "s"))
        first = await send_pass(session, "lb_one", {"s": ids["s"], "q": ids["q"]})
        await send_pass(session, "lb_one", {"p": ids["p"]}, kind=PassKind.CASCADE, tier=1)
    async with transaction(db.workers) as session:
        await session.execute(
            update(Attempt).where(col(Attempt.id) == first.attempts["q"]).values(overrides_json='{"tier": 1}')
        )
        await session.execute(update(Item).where(col(Item.id) == ids["q"]).values(position=9))
    async with db.workers() as session:
        lines = [line async for line in items_store.stream_for_chunk(session, first.chunk_id)]
    assert lines == [
        (ids["s"], "s", body("s").decode(), None),
        (ids["q"], "q", body("q").decode(), '{"tier": 1}'),
    ]


@pytest.mark.postgres
async def test_only_a_bulk_load_refreshes_postgresqls_statistics(pg_db: Database) -> None:
    await seed(pg_db.workers, custom_ids=[f"c{n}" for n in range(40)])
    counts = "SELECT string_agg(relname || '=' || reltuples, ' ' ORDER BY relname) FROM pg_class WHERE relname IN ({})"
    tables = counts.format("'items', 'attempts', 'provider_batches'")
    async with transaction(pg_db.workers) as session:
        await items_store.after_bulk_load(session, items_store.BULK_LOAD_ROWS - 1)
    assert await scalar(pg_db.api, tables) == "attempts=-1 items=-1 provider_batches=-1"
    async with transaction(pg_db.workers) as session:
        await items_store.after_bulk_load(session, items_store.BULK_LOAD_ROWS)
    assert await scalar(pg_db.api, tables) == "attempts=40 items=40 provider_batches=1"


async def test_a_tiers_queue_is_read_as_a_range_in_position_order(db: Database) -> None:
    """Whatever the planner knows: on PostgreSQL the statistics here are from before anything was queued, as
    after a first pass's lay-out, which made it read and sort the whole queue (with bodies) for every page."""
    custom_ids = [f"c{n}" for n in range(200)]
    async with transaction(db.api) as session:
        ids = await add_batch(session, "lb_queue", custom_ids)
        await items_store.after_bulk_load(session, items_store.BULK_LOAD_ROWS)  # statistics of an empty queue
    queued = [ids[c] for c in custom_ids[::3]]
    async with transaction(db.workers) as session:
        await session.execute(
            update(Item).where(col(Item.id).in_(queued)).values(status=ItemStatus.RETRYING, next_tier=1)
        )
    query = items_store.queued_items_query("lb_queue", tier=1, retry=False, after_position=10, limit=20)
    async with db.workers() as session:
        connection = await session.connection()
        compiled = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
        explain = "EXPLAIN " if is_postgres(db) else "EXPLAIN QUERY PLAN "
        plan = " ".join(str(row[-1]) for row in await connection.exec_driver_sql(explain + compiled))
        page = await items_store.queued_items(session, "lb_queue", tier=1, retry=False, after_position=10, limit=20)
    assert "ix_items_batch_next_tier_position" in plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
    assert [row.custom_id for row in page] == custom_ids[12::3][:20]
