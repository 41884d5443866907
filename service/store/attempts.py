"""Attempts: one item sent once in one pass. Laid out pending, finished once with its outcome; what reuse finds."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, or_
from sqlalchemy import select as sa_select
from sqlalchemy.orm import aliased
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from service.kit.clock import utcnow
from service.kit.cooperative import each
from service.models import Attempt, AttemptStatus, Batch, Chunk, Item, ItemStatus, Pass
from service.store.dialect import execute_many, insert_many
from service.store.items import IDS_PER_STATEMENT


class NewAttempt(NamedTuple):
    """An attempt as a lay-out creates it (pending, or about to take a reused outcome)."""

    item_id: int
    pass_id: int
    chunk_id: int | None  # None for an answer reused from an earlier attempt (nothing is sent)
    tier: int | None
    sent_because: str
    overrides_json: str | None
    max_tokens_sent: int | None
    reasoning_effort_sent: str | None
    request_hash: str | None
    status: str
    reused_from_attempt_id: int | None = None


_NEW_COLUMNS = NewAttempt._fields
_INSERTED_COLUMNS = (*_NEW_COLUMNS, "input_tokens", "output_tokens", "cost_pico", "created_at")


async def insert_rows(session: AsyncSession, rows: Sequence[NewAttempt]) -> None:
    """New attempts, written in bulk (their ids are not needed)."""
    now = utcnow()
    await insert_many(session, "attempts", _INSERTED_COLUMNS, [(*row, 0, 0, 0, now) for row in rows])


async def insert_returning_ids(session: AsyncSession, rows: Sequence[NewAttempt]) -> list[int]:
    """New attempts, their ids in the same order."""
    attempts = [Attempt(**row._asdict()) for row in rows]
    session.add_all(attempts)
    await session.flush()
    return [attempt.id for attempt in attempts if attempt.id is not None]


class PendingAttempt(NamedTuple):
    attempt_id: int
    item_id: int
    custom_id: str
    own_format: bool
    item_status: str
    tier: int | None
    sent_because: str
    overrides_json: str | None
    max_tokens_sent: int | None
    reasoning_effort_sent: str | None


async def pending_of_chunk(session: AsyncSession, chunk_id: int) -> dict[str, PendingAttempt]:
    """custom_id -> the chunk's unfinished attempt of that item."""
    rows = await session.execute(
        sa_select(
            col(Attempt.id),
            col(Item.id),
            col(Item.custom_id),
            col(Item.own_format),
            col(Item.status),
            col(Attempt.tier),
            col(Attempt.sent_because),
            col(Attempt.overrides_json),
            col(Attempt.max_tokens_sent),
            col(Attempt.reasoning_effort_sent),
        )
        .join(Item, col(Item.id) == col(Attempt.item_id))
        .where(col(Attempt.chunk_id) == chunk_id, col(Attempt.status) == AttemptStatus.PENDING)
    )
    return {row[2]: PendingAttempt(*row) async for row in each(rows)}


class FinishedAttempt(NamedTuple):
    """An attempt's outcome, as the ingest (or a reuse, or a chunk never sent) finishes it. In the order of the
    statement's parameters: it is handed to the driver as it is."""

    status: str
    error_code: str | None
    error_message: str | None
    content: str | None
    output_json: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cache_write_tokens: int
    cost_pico: int
    provider_request_id: str | None
    finished_at: datetime
    attempt_id: int


_FINISH = f"UPDATE attempts SET {', '.join(f'{name} = ?' for name in FinishedAttempt._fields[:-1])} WHERE id = ?"


async def finish(session: AsyncSession, rows: Sequence[FinishedAttempt]) -> None:
    """Each row finishes one attempt with its outcome."""
    await execute_many(session, _FINISH, rows)


async def of_item(session: AsyncSession, item_id: int) -> list[tuple[Attempt, Pass, str | None]]:
    """Every attempt at an item with its pass and provider batch id, oldest first."""
    rows = await session.execute(
        sa_select(Attempt, Pass, col(Chunk.provider_batch_id))
        .join(Pass, col(Pass.id) == col(Attempt.pass_id))
        .outerjoin(Chunk, col(Chunk.id) == col(Attempt.chunk_id))
        .where(col(Attempt.item_id) == item_id)
        .order_by(col(Pass.number))
    )
    return [(attempt, pass_, provider_id) for attempt, pass_, provider_id in rows]


class LineageStep(NamedTuple):
    pass_number: int
    tier: int | None
    provider: str
    model: str
    sent_because: str
    status: str
    error_code: str | None
    cost_pico: int
    reused_from_attempt_id: int | None
    reused_from_batch_id: str | None


async def lineage_of(session: AsyncSession, item_ids: Sequence[int]) -> dict[int, list[LineageStep]]:
    """Item id -> its attempts (pass, tier, model, why sent, outcome), oldest first. A page's items have nearly
    consecutive ids: read them as one id range (an index range scan, no thousand-value IN list) when they do."""
    if not item_ids:
        return {}
    wanted = set(item_ids)
    low, high = min(wanted), max(wanted)
    if high - low < 2 * len(wanted):
        conditions = [[col(Attempt.item_id).between(low, high)]]
    else:
        ordered = sorted(wanted)
        conditions = [
            [col(Attempt.item_id).in_(ordered[start : start + IDS_PER_STATEMENT])]
            for start in range(0, len(ordered), IDS_PER_STATEMENT)
        ]
    source = aliased(Attempt)
    source_item = aliased(Item)
    columns: list[Any] = [
        col(Attempt.item_id),
        col(Pass.number),
        col(Attempt.tier),
        col(Pass.provider),
        col(Pass.model),
        col(Attempt.sent_because),
        col(Attempt.status),
        col(Attempt.error_code),
        col(Attempt.cost_pico),
        col(Attempt.reused_from_attempt_id),
        col(source_item.batch_id),
    ]
    lineage: dict[int, list[LineageStep]] = {}
    for where in conditions:
        rows = await (await session.connection()).execute(
            sa_select(*columns)
            .join(Pass, col(Pass.id) == col(Attempt.pass_id))
            .outerjoin(source, col(source.id) == col(Attempt.reused_from_attempt_id))
            .outerjoin(source_item, col(source_item.id) == col(source.item_id))
            .where(*where)
            .order_by(col(Attempt.item_id), col(Pass.number))
        )
        async for item_id, *step in each(rows.all()):
            if item_id in wanted:
                lineage.setdefault(int(item_id), []).append(LineageStep(*step))
    return lineage


@dataclass(frozen=True)
class Reusable:
    """An earlier attempt an identical request can take the outcome of."""

    attempt_id: int
    batch_id: str
    status: str
    error_code: str | None
    error_message: str | None
    content: str | None
    output_json: str | None
    finish_reason: str | None
    output_tokens: int
    cost_pico: int


def _reusable_conditions(
    tenant: str, hashes: Sequence[str], since: datetime, replayable_failures: Sequence[str]
) -> list[Any]:
    """A paid-for attempt of the tenant since `since`, of a batch not deleted, with one of `hashes` that
    succeeded, or that failed with one of `replayable_failures` on an item that went on to succeed (replaying the
    failure sends the item the same way, to the attempt that succeeded)."""
    return [
        col(Attempt.request_hash).in_(hashes),
        col(Attempt.reused_from_attempt_id).is_(None),
        col(Attempt.finished_at) >= since,
        col(Batch.tenant) == tenant,
        col(Batch.deleted_at).is_(None),  # a deleted batch's answers are not handed on (its hashes go with the purge)
        or_(
            col(Attempt.status) == AttemptStatus.SUCCEEDED,
            and_(
                col(Attempt.status) == AttemptStatus.FAILED,
                col(Attempt.error_code).in_(replayable_failures),
                col(Item.status) == ItemStatus.SUCCEEDED,
            ),
        ),
    ]


async def reusable_hashes(
    session: AsyncSession, tenant: str, hashes: Sequence[str], since: datetime, replayable_failures: Sequence[str]
) -> set[str]:
    """Which of `hashes` reuse would answer (what `reusable` finds, without reading the answers)."""
    found: set[str] = set()
    for start in range(0, len(hashes), IDS_PER_STATEMENT):
        part = hashes[start : start + IDS_PER_STATEMENT]
        rows = await session.execute(
            sa_select(col(Attempt.request_hash))
            .distinct()
            .join(Item, col(Item.id) == col(Attempt.item_id))
            .join(Batch, col(Batch.id) == col(Item.batch_id))
            .where(*_reusable_conditions(tenant, part, since, replayable_failures))
        )
        found.update(str(row[0]) for row in rows)
    return found


async def reusable(
    session: AsyncSession, tenant: str, hashes: Sequence[str], since: datetime, replayable_failures: Sequence[str]
) -> dict[str, Reusable]:
    """Request hash -> the newest attempt whose outcome an identical request can take (see the conditions)."""
    found: dict[str, Reusable] = {}
    for start in range(0, len(hashes), IDS_PER_STATEMENT):
        part = hashes[start : start + IDS_PER_STATEMENT]
        rows = await session.execute(
            sa_select(
                col(Attempt.request_hash),
                col(Attempt.id),
                col(Item.batch_id),
                col(Attempt.status),
                col(Attempt.error_code),
                col(Attempt.error_message),
                col(Attempt.content),
                col(Attempt.output_json),
                col(Attempt.finish_reason),
                col(Attempt.output_tokens),
                col(Attempt.cost_pico),
            )
            .join(Item, col(Item.id) == col(Attempt.item_id))
            .join(Batch, col(Batch.id) == col(Item.batch_id))
            .where(*_reusable_conditions(tenant, part, since, replayable_failures))
            .order_by(col(Attempt.id))
        )
        for request_hash, *values in rows:
            found[str(request_hash)] = Reusable(*values)
    return found
