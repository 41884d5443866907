"""store.results on SQLite and PostgreSQL: a batch's merged rows read by keyset on position (pages that cover
every row once, in order, and only that batch's), each joined to its deciding attempt and pass, and every
ResultFilter field (status, pass, tier, changed since a pass, updated after a time) alone and combined."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

from service.kit.clock import utcnow
from service.models import AttemptStatus, Item, ItemStatus, PassKind
from service.store import Database, transaction
from service.store import attempts as attempts_store
from service.store import results as results_store
from service.store.results import ResultFilter, ResultRecord
from service.views.results import _only_step, _step, ndjson_pages, result_rows
from tests.store.rows import (
    MODEL,
    STRONG_MODEL,
    SUCCESS,
    SentPass,
    decide,
    failure,
    seed,
    send_pass,
)

CUSTOM_IDS = ("a", "b", "c", "d", "e", "f")


@dataclass(frozen=True)
class History:
    first: SentPass
    second: SentPass
    first_decided: datetime
    second_decided: datetime


@pytest.fixture
async def history(db: Database) -> History:
    """a, f succeeded in pass 1 (tier 0); b failed there and succeeded in pass 2 (tier 1); c failed for good in
    pass 1; d is still in flight; e was cancelled before it was sent. Another batch has items of its own."""
    first = await seed(db.workers, custom_ids=CUSTOM_IDS)
    await seed(db.workers, "lb_other", ("a", "z"))
    decided = utcnow() + timedelta(minutes=1)  # after every row was inserted
    async with transaction(db.workers) as session:
        await decide(
            session,
            first,
            {
                "a": SUCCESS,
                "b": failure("json_validate_failed", item_status=ItemStatus.RETRYING, next_tier=1),
                "c": failure("max_tokens"),
                "f": SUCCESS,
            },
            now=decided,
        )
        await session.execute(
            update(Item)
            .where(col(Item.id) == first.items["e"])
            .values(status=ItemStatus.FAILED, error_code="cancelled", error_message="cancelled before it was sent")
        )
        second = await send_pass(
            session, "lb_one", {"b": first.items["b"]}, kind=PassKind.CASCADE, model=STRONG_MODEL, tier=1
        )
        later = await decide(session, second, {"b": SUCCESS}, now=decided + timedelta(minutes=1))
    return History(first, second, decided, later)


async def page(
    db: Database, where: ResultFilter | None = None, after: int = -1, limit: int = 100
) -> list[ResultRecord]:
    async with db.api() as session:
        return await results_store.page(session, "lb_one", after_position=after, limit=limit, where=where)


async def custom_ids(db: Database, where: ResultFilter) -> list[str]:
    return [record.custom_id for record in await page(db, where)]


async def test_pages_by_position_cover_every_row_once_in_order(db: Database, history: History) -> None:
    seen: list[str] = []
    after = -1
    while records := await page(db, after=after, limit=4):
        seen += [record.custom_id for record in records]
        after = records[-1].position
    assert seen == list(CUSTOM_IDS), "nothing of lb_other, nothing twice"
    assert [record.custom_id for record in await page(db, after=1, limit=2)] == ["c", "d"]
    assert await page(db, after=5) == []


async def test_a_row_is_the_item_joined_to_its_deciding_attempt_and_pass(db: Database, history: History) -> None:
    rows = {record.custom_id: record for record in await page(db)}
    assert rows["b"] == ResultRecord(
        item_id=history.first.items["b"],
        position=1,
        custom_id="b",
        status=ItemStatus.SUCCEEDED,
        metadata_json=None,
        attempts=2,
        cost_pico=2_000,
        item_error_code=None,
        item_error_message=None,
        changed_pass=2,
        updated_at=history.second_decided,
        pass_number=2,
        tier=1,
        provider="groq",
        model=STRONG_MODEL,
        attempt_status=AttemptStatus.SUCCEEDED,
        error_code=None,
        error_message=None,
        content='{"ok": true}',
        output_json='{"ok": true}',
        finish_reason="stop",
        input_tokens=100,
        output_tokens=20,
        cached_input_tokens=0,
        cache_write_tokens=0,
        sent_because="first",
        reused_from_attempt_id=None,
    )
    assert (rows["c"].pass_number, rows["c"].model, rows["c"].attempt_status, rows["c"].error_code) == (
        1,
        MODEL,
        AttemptStatus.FAILED,
        "max_tokens",
    )
    undecided = (rows["d"].pass_number, rows["d"].model, rows["d"].attempt_status, rows["d"].content)
    assert undecided == (None, None, None, None) and rows["d"].status == ItemStatus.PENDING
    assert (rows["e"].item_error_code, rows["e"].item_error_message, rows["e"].pass_number) == (
        "cancelled",
        "cancelled before it was sent",
        None,
    )


async def test_status_filter(db: Database, history: History) -> None:
    assert await custom_ids(db, ResultFilter(status=ItemStatus.SUCCEEDED)) == ["a", "b", "f"]
    assert await custom_ids(db, ResultFilter(status=ItemStatus.FAILED)) == ["c", "e"]
    assert await custom_ids(db, ResultFilter(status=ItemStatus.PENDING)) == ["d"]


async def test_pass_number_filter_is_the_pass_that_decided_the_row(db: Database, history: History) -> None:
    assert await custom_ids(db, ResultFilter(pass_number=1)) == ["a", "c", "f"]
    assert await custom_ids(db, ResultFilter(pass_number=2)) == ["b"]
    assert await custom_ids(db, ResultFilter(pass_number=3)) == []


async def test_tier_filter_is_the_tier_that_decided_the_row(db: Database, history: History) -> None:
    assert await custom_ids(db, ResultFilter(tier=0)) == ["a", "c", "f"]
    assert await custom_ids(db, ResultFilter(tier=1)) == ["b"]


async def test_since_pass_filter_is_the_rows_changed_after_that_pass(db: Database, history: History) -> None:
    assert await custom_ids(db, ResultFilter(since_pass=0)) == ["a", "b", "c", "f"]
    assert await custom_ids(db, ResultFilter(since_pass=1)) == ["b"]
    assert await custom_ids(db, ResultFilter(since_pass=2)) == []


async def test_updated_after_filter_compares_timestamps_to_the_microsecond(db: Database, history: History) -> None:
    assert await custom_ids(db, ResultFilter(updated_after=history.first_decided)) == ["b"]
    just_before = history.first_decided - timedelta(microseconds=1)
    assert await custom_ids(db, ResultFilter(updated_after=just_before)) == ["a", "b", "c", "f"]
    assert await custom_ids(db, ResultFilter(updated_after=history.second_decided)) == []


async def test_filters_combine_and_keep_the_keyset(db: Database, history: History) -> None:
    succeeded_on_tier_0 = ResultFilter(status=ItemStatus.SUCCEEDED, tier=0)
    assert await custom_ids(db, succeeded_on_tier_0) == ["a", "f"]
    assert [r.custom_id for r in await page(db, succeeded_on_tier_0, after=0, limit=1)] == ["f"]
    everything = ResultFilter(
        status=ItemStatus.SUCCEEDED, pass_number=2, tier=1, since_pass=1, updated_after=history.first_decided
    )
    assert await custom_ids(db, everything) == ["b"]
    assert await custom_ids(db, ResultFilter(status=ItemStatus.FAILED, pass_number=2)) == []


async def test_a_rows_lineage_read_off_its_page_row_is_the_one_its_attempts_give(
    db: Database, history: History
) -> None:
    """Rows decided by their only attempt take their lineage from the page row, the others from the attempts:
    both must give what the attempts alone give, for every kind of row (single success, cascade, final failure,
    in flight, never sent)."""
    async with db.api() as session:
        rows, _cursor = await result_rows(session, "lb_one", after_position=-1, limit=100, where=None, raw=False)
        records = await results_store.page(session, "lb_one", after_position=-1, limit=100)
        from_attempts = await attempts_store.lineage_of(session, [record.item_id for record in records])
    expected = {record.custom_id: [_step(step) for step in from_attempts.get(record.item_id, [])] for record in records}
    assert {row["custom_id"]: row["lineage"] for row in rows} == expected
    assert [len(expected[custom_id]) for custom_id in CUSTOM_IDS] == [1, 2, 1, 1, 1, 1]
    read_off_the_row = [record.custom_id for record in records if _only_step(record) is not None]
    assert read_off_the_row == ["a", "c", "f"]  # both ways are compared above


async def test_an_export_left_after_its_first_block_gives_its_connections_back(db: Database, history: History) -> None:
    async with db.api() as session:
        first = await result_rows(session, "lb_one", after_position=-1, limit=1, where=None, raw=True)
    blocks = ndjson_pages(db.api, "lb_one", first=first, where=None, limit=None, page_size=1)
    assert (await anext(blocks)).count(b"\n") == 1  # the next page is being read meanwhile
    await blocks.aclose()  # the client went away
    assert [task for task in asyncio.all_tasks() if task is not asyncio.current_task()] == [], "the read is over"
    assert db.api_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
