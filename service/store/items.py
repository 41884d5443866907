"""Items: the ones a pass takes, their merged rows as outcomes arrive, the queue of the cascade (`next_tier`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, exists, func, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import Attempt, Item, ItemBody, ItemStatus
from service.store.dialect import execute_many, refresh_statistics
from service.store.unit import rows_affected

RETRY_QUEUE = "retry"  # next_reason of items a POST .../retry queued for its pass
IDS_PER_STATEMENT = 900  # below SQLite's 999 bound parameters
SPOOL_FETCH_ROWS = 1000

_ITEMS = Item.__table__  # type: ignore[attr-defined]


async def find(session: AsyncSession, batch_id: str, custom_id: str) -> Item | None:
    result = await session.exec(select(Item).where(Item.batch_id == batch_id, Item.custom_id == custom_id))
    return result.first()


async def status_counts(session: AsyncSession, batch_id: str) -> dict[str, int]:
    rows = await session.execute(
        select(Item.status, func.count()).where(Item.batch_id == batch_id).group_by(Item.status)
    )
    return {status: count for status, count in rows}


_ITS_BODY = col(ItemBody.item_id) == col(Item.id)

LAYOUT_COLUMNS = (
    col(Item.id),
    col(Item.position),
    col(Item.custom_id),
    col(ItemBody.body_json),
    col(Item.own_format),
    col(Item.next_reason),
    col(Item.next_overrides_json),
)


def _layout_rows(batch_id: str, status: str, after_position: int) -> Any:
    """LAYOUT_COLUMNS of the batch's items in `status` after `after_position`, each with its body."""
    return (
        sa_select(*LAYOUT_COLUMNS)
        .join(ItemBody, _ITS_BODY)
        .where(col(Item.batch_id) == batch_id, col(Item.position) > after_position, col(Item.status) == status)
    )


async def first_pass_items(session: AsyncSession, batch_id: str, *, after_position: int, limit: int) -> list[Any]:
    """The next `limit` items never sent after `after_position`: what the first pass takes, in submission
    order, a page at a time (a pass of any size is laid out in bounded memory)."""
    never_sent = ~exists().where(col(Attempt.item_id) == col(Item.id))
    query = _layout_rows(batch_id, ItemStatus.PENDING, after_position).where(never_sent)
    return list((await session.execute(query.order_by(col(Item.position)).limit(limit))).all())


async def queued_items(
    session: AsyncSession, batch_id: str, *, tier: int | None, retry: bool, after_position: int, limit: int
) -> list[Any]:
    """The next `limit` items the cascade queued for `tier` (or a retry queued) after `after_position`."""
    query = queued_items_query(batch_id, tier=tier, retry=retry, after_position=after_position, limit=limit)
    return list((await session.execute(query)).all())


def queued_items_query(batch_id: str, *, tier: int | None, retry: bool, after_position: int, limit: int) -> Any:
    """The statement `queued_items` runs: a range of ix_items_batch_next_tier_position for a tier's queue."""
    query = _layout_rows(batch_id, ItemStatus.RETRYING, after_position)
    if retry:
        query = query.where(col(Item.next_reason) == RETRY_QUEUE)
    else:
        query = query.where(col(Item.next_tier) == tier, _not_a_retry())
    return query.order_by(col(Item.position)).limit(limit)


def _not_a_retry() -> Any:
    """Queued by the cascade, not by a retry (a NULL reason counts as the cascade's: `!=` alone would drop it)."""
    return or_(col(Item.next_reason).is_(None), col(Item.next_reason) != RETRY_QUEUE)


async def queued_tiers(session: AsyncSession, batch_id: str) -> dict[int, int]:
    """Tier -> how many items the cascade has queued for it (not yet in a pass)."""
    rows = await session.execute(
        sa_select(col(Item.next_tier), func.count())
        .where(
            col(Item.batch_id) == batch_id,
            col(Item.next_tier).is_not(None),
            _not_a_retry(),
        )
        .group_by(col(Item.next_tier))
    )
    return {int(tier): int(count) for tier, count in rows}


async def clear_queue(session: AsyncSession, item_ids: Sequence[int]) -> None:
    """The items are in a pass now (by id: never an item queued meanwhile by a concurrent ingest)."""
    for start in range(0, len(item_ids), IDS_PER_STATEMENT):
        await session.execute(
            update(Item)
            .where(col(Item.id).in_(item_ids[start : start + IDS_PER_STATEMENT]))
            .values(next_tier=None, next_reason=None, next_overrides_json=None)
        )


class MergedItem(NamedTuple):
    """An item's merged row after an outcome (what its deciding attempt says, where the cascade sends it next), and
    what the attempt adds to it. In the order of the statement's parameters: it is handed to the driver as it is."""

    status: str
    deciding_attempt_id: int | None
    next_tier: int | None
    next_reason: str | None
    next_overrides_json: str | None
    error_code: str | None
    error_message: str | None
    changed_pass: int
    updated_at: datetime
    attempts_added: int
    cost_added_pico: int
    item_id: int


_MERGE = (
    "UPDATE items SET "
    + ", ".join(f"{column} = ?" for column in MergedItem._fields[:9])
    + ", attempt_count = attempt_count + ?, cost_pico = cost_pico + ? WHERE id = ?"
)


async def merge(session: AsyncSession, rows: Sequence[MergedItem]) -> None:
    """Each row sets one item's merged row."""
    await execute_many(session, _MERGE, rows)


async def fail_unstarted(session: AsyncSession, batch_id: str, code: str, message: str) -> tuple[int, int]:
    """Items no pass will send now (never laid out, or queued by the cascade or a retry) fail with `code`;
    (how many were pending, how many retrying)."""
    values = {
        "status": ItemStatus.FAILED,
        "error_code": code,
        "error_message": message,
        "next_tier": None,
        "next_reason": None,
        "next_overrides_json": None,
        "updated_at": utcnow(),
    }
    never_sent = ~exists().where(col(Attempt.item_id) == col(Item.id))
    pending = await session.execute(
        update(Item)
        .where(col(Item.batch_id) == batch_id, col(Item.status) == ItemStatus.PENDING, never_sent)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    queued = await session.execute(
        update(Item)
        .where(
            col(Item.batch_id) == batch_id,
            col(Item.status) == ItemStatus.RETRYING,
            or_(col(Item.next_tier).is_not(None), col(Item.next_reason).is_not(None)),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return rows_affected(pending), rows_affected(queued)


class BudgetWait(NamedTuple):
    """An item laid out that waits for room in the budget: queued again as it was (in the statement's order)."""

    next_tier: int | None
    next_reason: str | None
    next_overrides_json: str | None
    item_id: int


_WAIT = (
    f"UPDATE items SET status = '{ItemStatus.RETRYING}', next_tier = ?, next_reason = ?, next_overrides_json = ? "
    "WHERE id = ?"
)


async def wait_for_budget(session: AsyncSession, rows: Sequence[BudgetWait]) -> None:
    """The items wait for a later round (a never-sent item is `retrying` from now on: queued for a pass)."""
    await execute_many(session, _WAIT, rows)


async def retry_queued(session: AsyncSession, batch_id: str) -> int:
    """How many items wait for a retry pass (queued by a retry, or waiting for budget after one)."""
    count = await session.scalar(
        sa_select(func.count()).where(
            col(Item.batch_id) == batch_id,
            col(Item.status) == ItemStatus.RETRYING,
            col(Item.next_reason) == RETRY_QUEUE,
        )
    )
    return int(count or 0)


async def reopen_over_budget(session: AsyncSession, batch_id: str, code: str) -> int:
    """Items that failed with `code` (budget_exceeded) are queued again where they were to be sent: the tier,
    reason and overrides of the attempt that failed them. How many."""

    def of_attempt(column: Any) -> Any:
        return sa_select(column).where(col(Attempt.id) == col(Item.deciding_attempt_id)).scalar_subquery()

    failed_by = or_(col(Item.error_code) == code, of_attempt(col(Attempt.error_code)) == code)
    result = await session.execute(
        update(Item)
        .where(col(Item.batch_id) == batch_id, col(Item.status) == ItemStatus.FAILED, failed_by)
        .values(
            status=ItemStatus.RETRYING,
            next_tier=of_attempt(col(Attempt.tier)),
            next_reason=of_attempt(col(Attempt.sent_because)),
            next_overrides_json=of_attempt(col(Attempt.overrides_json)),
            error_code=None,
            error_message=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return rows_affected(result)


async def queue_retry(
    session: AsyncSession, batch_id: str, custom_ids: Collection[str] | None, tier: int | None
) -> int:
    """Failed items (all, or these) wait for a retry pass; how many."""
    condition = and_(col(Item.batch_id) == batch_id, col(Item.status) == ItemStatus.FAILED)
    if custom_ids is not None:
        condition = and_(condition, col(Item.custom_id).in_(list(custom_ids)))
    result = await session.execute(
        update(Item)
        .where(condition)
        .values(
            status=ItemStatus.RETRYING,
            next_tier=tier,
            next_reason=RETRY_QUEUE,
            next_overrides_json=None,
            error_code=None,
            error_message=None,
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    return rows_affected(result)


async def failed_custom_ids(session: AsyncSession, batch_id: str, custom_ids: Collection[str] | None) -> set[str]:
    """Which of `custom_ids` (or all) are failed items of the batch."""
    query = sa_select(col(Item.custom_id)).where(col(Item.batch_id) == batch_id, col(Item.status) == ItemStatus.FAILED)
    if custom_ids is not None:
        query = query.where(col(Item.custom_id).in_(list(custom_ids)))
    return {custom_id for (custom_id,) in await session.execute(query)}


async def failed_for_check(session: AsyncSession, batch_id: str) -> AsyncIterator[tuple[str, str]]:
    """(custom_id, body JSON) of the failed items, a thousand rows at a time."""
    query = (
        sa_select(col(Item.custom_id), col(ItemBody.body_json))
        .join(ItemBody, _ITS_BODY)
        .where(col(Item.batch_id) == batch_id, col(Item.status) == ItemStatus.FAILED)
        .execution_options(yield_per=SPOOL_FETCH_ROWS)
    )
    result = await session.stream(query)
    async for custom_id, body_json in result:
        yield custom_id, body_json


async def final_failure_codes(session: AsyncSession, batch_id: str) -> dict[str, int]:
    """Code -> count over the items whose failure is final (their own code, else their deciding attempt's)."""
    code = func.coalesce(col(Item.error_code), col(Attempt.error_code))
    rows = await session.execute(
        sa_select(code, func.count())
        .select_from(Item)
        .outerjoin(Attempt, col(Attempt.id) == col(Item.deciding_attempt_id))
        .where(col(Item.batch_id) == batch_id, col(Item.status) == ItemStatus.FAILED)
        .group_by(code)
    )
    return {found or "unknown": int(count) for found, count in rows}


async def bodies(session: AsyncSession, item_ids: Sequence[int]) -> dict[int, str]:
    """Item id -> body JSON."""
    found: dict[int, str] = {}
    for start in range(0, len(item_ids), IDS_PER_STATEMENT):
        rows = await session.execute(
            sa_select(col(ItemBody.item_id), col(ItemBody.body_json)).where(
                col(ItemBody.item_id).in_(item_ids[start : start + IDS_PER_STATEMENT])
            )
        )
        found.update({int(item_id): body for item_id, body in rows})
    return found


async def stream_for_chunk(session: AsyncSession, chunk_id: int) -> AsyncIterator[tuple[int, str, str, str | None]]:
    """(item id, custom_id, body JSON, the attempt's overrides JSON) of every item in a chunk, in submission
    order."""
    query = (
        sa_select(col(Item.id), col(Item.custom_id), col(ItemBody.body_json), col(Attempt.overrides_json))
        .join(Attempt, col(Attempt.item_id) == col(Item.id))
        .join(ItemBody, _ITS_BODY)
        .where(col(Attempt.chunk_id) == chunk_id)
        .order_by(col(Item.position))
        .execution_options(yield_per=SPOOL_FETCH_ROWS)
    )
    result = await session.stream(query)
    async for item_id, custom_id, body_json, overrides_json in result:
        assert item_id is not None
        yield item_id, custom_id, body_json, overrides_json


BULK_LOAD_ROWS = 10_000  # a submission or a lay-out this large refreshes the planner's statistics
LAID_OUT_TABLES = ("items", "attempts", "provider_batches")  # what a lay-out writes in bulk


async def after_bulk_load(session: AsyncSession, rows: int, tables: Sequence[str] = LAID_OUT_TABLES) -> None:
    """Tens of thousands of new rows in `tables`: let the planner know (see dialect.refresh_statistics)."""
    if rows >= BULK_LOAD_ROWS:
        await refresh_statistics(session, tables)
