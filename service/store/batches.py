"""Batches: inserting one with its items, reading (within a tenant), listing, the conditional writes of its
status, and its kept counters (added to in place, never recomputed)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.models import OPEN_BATCH_STATUSES, Batch, BatchStatus, Item
from service.store.dialect import insert_many
from service.store.items import after_bulk_load
from service.store.unit import add_in_place, rows_affected

INSERT_ROWS = 2000  # items per INSERT statement: bounded memory for any batch size


async def insert_batch(
    session: AsyncSession, batch: Batch, items: Iterable[tuple[str, bytes, bytes | None, bool]]
) -> int:
    """The batch and its items (custom_id, body JSON, metadata JSON, own response_format), in the caller's
    transaction (all or nothing); how many items."""
    session.add(batch)
    await session.flush()
    assert batch.id is not None
    now = utcnow()
    count = 0
    rows: list[tuple[Any, ...]] = []
    bodies: list[str] = []
    for custom_id, body_json, metadata_json, own_format in items:
        metadata = metadata_json.decode() if metadata_json is not None else None
        rows.append((batch.id, custom_id, count, metadata, own_format, "pending", 0, 0, 0, now))
        bodies.append(body_json.decode())
        count += 1
        if len(rows) == INSERT_ROWS:
            await _insert_items(session, batch.id, count - len(rows), rows, bodies)
            rows, bodies = [], []
    await _insert_items(session, batch.id, count - len(rows), rows, bodies)
    # The first pass reads these items a page at a time. Without statistics PostgreSQL found each page by
    # reading all of the batch's items and bodies (34 ms a page at 21,000 items instead of 0.7), and, once
    # attempts existed, by scanning them for every item (446 ms for one page). ANALYZE counts this
    # transaction's own new rows; its lock on the table lasts until the submission commits, moments later.
    await after_bulk_load(session, count, ("items",))
    return count


async def _insert_items(
    session: AsyncSession, batch_id: str, first_position: int, rows: list[tuple[Any, ...]], bodies: list[str]
) -> None:
    """Items at positions first_position... and their bodies, keyed by the ids the items were given."""
    if not rows:
        return
    await insert_many(session, "items", _ITEM_COLUMNS, rows)
    ids = await session.execute(
        select(Item.id)
        .where(
            Item.batch_id == batch_id,
            col(Item.position).between(first_position, first_position + len(rows) - 1),
        )
        .order_by(col(Item.position))
    )
    await insert_many(session, "item_bodies", ("item_id", "body_json"), list(zip(ids.scalars(), bodies, strict=True)))


_ITEM_COLUMNS = (
    "batch_id",
    "custom_id",
    "position",
    "metadata_json",
    "own_format",
    "status",
    "attempt_count",
    "cost_pico",
    "changed_pass",
    "updated_at",
)


def _visible(query: Any, tenant: str | None) -> Any:
    return query if tenant is None else query.where(col(Batch.tenant) == tenant)


async def get_batch(session: AsyncSession, batch_id: str, tenant: str | None = None) -> Batch | None:
    """The batch, if it exists and belongs to `tenant` (None: any tenant's)."""
    batch = await session.get(Batch, batch_id, populate_existing=True)
    if batch is None or (tenant is not None and batch.tenant != tenant):
        return None
    return batch


async def list_batches(
    session: AsyncSession, *, tenant: str | None, status: str | None, after: str | None, limit: int
) -> tuple[list[Batch], bool]:
    query = _visible(select(Batch), tenant).order_by(col(Batch.id).desc())
    if status:
        query = query.where(Batch.status == status)
    if after:
        query = query.where(Batch.id < after)
    rows = list((await session.exec(query.limit(limit + 1))).all())
    return rows[:limit], len(rows) > limit


async def cancel_requested(session: AsyncSession, batch_id: str) -> bool:
    return bool(await session.scalar(select(Batch.cancel_requested).where(Batch.id == batch_id)))


async def request_cancel(session: AsyncSession, batch_id: str) -> bool:
    """Mark an open batch for cancelling; False when it is already finished."""
    result = await session.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id, col(Batch.status).in_(OPEN_BATCH_STATUSES))
        .values(cancel_requested=True, updated_at=utcnow())
    )
    return rows_affected(result) > 0


async def reopen(session: AsyncSession, batch_id: str, expected_status: str) -> bool:
    """A finished batch runs again (a retry); False when its status is no longer `expected_status`, or it was
    deleted meanwhile (a purge holds the row from its first statement: this waits for it, then matches nothing)."""
    result = await session.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id, col(Batch.status) == expected_status, col(Batch.deleted_at).is_(None))
        .values(status=BatchStatus.RUNNING, cancel_requested=False, finished_at=None, updated_at=utcnow())
    )
    return rows_affected(result) > 0


async def fence_open_batch(session: AsyncSession, batch_id: str, worker_id: str) -> bool:
    """The first statement of a worker's step on a batch: it locks the row (the database, on SQLite) until
    commit, and matches nothing once another worker holds the batch or it has finished."""
    result = await session.execute(
        update(Batch)
        .where(
            col(Batch.id) == batch_id,
            col(Batch.lease_owner) == worker_id,
            col(Batch.status).in_(OPEN_BATCH_STATUSES),
        )
        .values(updated_at=utcnow())
    )
    return rows_affected(result) > 0


async def set_status(
    session: AsyncSession, batch_id: str, status: str, *, finished_at: datetime | None = None, release: bool = False
) -> None:
    """Write the batch's status (the lifecycle layer is the only caller). `release`: a finished batch holds no
    lease, even if its worker dies right after."""
    values: dict[str, Any] = {"status": status, "updated_at": utcnow()}
    if finished_at is not None:
        values["finished_at"] = finished_at
    if release:
        values |= {"lease_owner": None, "lease_expires_at": None}
    await session.execute(update(Batch).where(col(Batch.id) == batch_id).values(**values))


COUNTERS = (
    "succeeded",
    "failed",
    "pending",
    "retrying",
    "input_tokens",
    "output_tokens",
    "cost_pico",
    "saved_pico",
    "reserved_pico",
)


async def add_to_counters(session: AsyncSession, batch_id: str, **deltas: int) -> None:
    """`counter = counter + delta` in one statement: concurrent ingests of one batch add up, never overwrite."""
    await add_in_place(session, Batch, batch_id, COUNTERS, deltas, "batch")


async def reserve(session: AsyncSession, batch_id: str, amount_pico: int) -> bool:
    """Reserve `amount_pico` of the batch's budget: only while spent + reserved + amount stays within it (or the
    batch has none). One conditional statement, so concurrent reservations never overshoot the budget."""
    result = await session.execute(
        update(Batch)
        .where(
            col(Batch.id) == batch_id,
            or_(
                col(Batch.budget_pico).is_(None),
                col(Batch.cost_pico) + col(Batch.reserved_pico) + amount_pico <= col(Batch.budget_pico),
            ),
        )
        .values(reserved_pico=col(Batch.reserved_pico) + amount_pico)
    )
    return rows_affected(result) > 0


async def budget_state(session: AsyncSession, batch_id: str) -> tuple[int | None, int, int]:
    """(budget, spent, reserved) as committed now: what a lay-out plans with (the caller holds the batch's row)."""
    row = (
        await session.execute(
            select(Batch.budget_pico, Batch.cost_pico, Batch.reserved_pico).where(col(Batch.id) == batch_id)
        )
    ).one()
    return row[0], int(row[1]), int(row[2])


async def set_budget_waiting(session: AsyncSession, batch_id: str, waiting: int) -> None:
    await session.execute(update(Batch).where(col(Batch.id) == batch_id).values(budget_waiting=waiting))


async def raise_budget(session: AsyncSession, batch_id: str, budget_pico: int | None) -> bool:
    """An open batch's budget goes up (None: no budget any more); False when the batch is no longer open or its
    budget is above the new one (a concurrent raise): one conditional write, so a budget never goes down while
    reservations are made against it."""
    not_lowered = col(Batch.budget_pico).is_not(None) if budget_pico is None else col(Batch.budget_pico) <= budget_pico
    result = await session.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id, col(Batch.status).in_(OPEN_BATCH_STATUSES), not_lowered)
        .values(budget_pico=budget_pico, updated_at=utcnow())
    )
    return rows_affected(result) > 0


async def set_finished_budget(
    session: AsyncSession, batch_id: str, budget_pico: int | None, expected_status: str
) -> bool:
    """A finished batch takes any budget; False when its status is no longer `expected_status`."""
    result = await session.execute(
        update(Batch)
        .where(col(Batch.id) == batch_id, col(Batch.status) == expected_status)
        .values(budget_pico=budget_pico, updated_at=utcnow())
    )
    return rows_affected(result) > 0


async def add_warning(session: AsyncSession, batch_id: str, warning: str) -> None:
    batch = await session.get(Batch, batch_id)
    if batch is not None and warning not in batch.warnings:
        batch.warnings = [*batch.warnings, warning]
        session.add(batch)
        await session.flush()
