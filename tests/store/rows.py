"""The rows the store's tests start from, written through the store's own functions (and plain models where the
store has no insert of its own), and the reads that check what a table holds afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import text
from sqlalchemy import update as sa_update
from sqlmodel import SQLModel, col, select

from service.kit.clock import utcnow
from service.models import DEFAULT_TENANT, Attempt, AttemptStatus, Batch, Chunk, Item, PassKind, WebhookDelivery
from service.store import Database, Session, Sessions, transaction
from service.store import attempts as attempts_store
from service.store import batches as batches_store
from service.store import chunks as chunks_store
from service.store import items as items_store
from service.store import passes as passes_store
from service.store import webhooks as webhooks_store
from service.store.attempts import FinishedAttempt, NewAttempt
from service.store.items import MergedItem

MODEL = "llama-3.1-8b-instant"
STRONG_MODEL = "llama-3.3-70b-versatile"
CUSTOM_IDS = ("a", "b", "c")
BIG_PICO = 7_000_000_000_123  # $7: far past 32-bit integers

Row = TypeVar("Row", bound=SQLModel)
T = TypeVar("T")


def is_postgres(db: Database) -> bool:
    return db.api_engine.dialect.name == "postgresql"


def body(custom_id: str) -> bytes:
    return orjson.dumps({"messages": [{"role": "user", "content": f"say {custom_id}"}]})


def new_batch(batch_id: str, count: int, *, tenant: str = DEFAULT_TENANT, **fields: Any) -> Batch:
    values: dict[str, Any] = {"tiers": [{"model": MODEL, "params": {}}, {"model": STRONG_MODEL, "params": {}}]}
    values |= fields
    return Batch(id=batch_id, tenant=tenant, item_count=count, pending=count, **values)


async def add_batch(
    session: Session,
    batch_id: str = "lb_one",
    custom_ids: Sequence[str] = CUSTOM_IDS,
    *,
    tenant: str = DEFAULT_TENANT,
    **fields: Any,
) -> dict[str, int]:
    """A batch and its items (through `insert_batch`); custom_id -> item id."""
    items = [(custom_id, body(custom_id), None, False) for custom_id in custom_ids]
    await batches_store.insert_batch(session, new_batch(batch_id, len(items), tenant=tenant, **fields), items)
    return await item_ids(session, batch_id)


async def item_ids(session: Session, batch_id: str) -> dict[str, int]:
    rows = await session.execute(select(Item.custom_id, Item.id).where(Item.batch_id == batch_id))
    return {custom_id: int(item_id) for custom_id, item_id in rows}


async def add_delivery(session: Session, batch_id: str, message_id: str, **values: Any) -> int:
    """A webhook delivery of the batch's terminal event (through `insert_delivery`); its id."""
    fields: dict[str, Any] = {
        "event": "batch.completed",
        "url": "https://example.test/hook",
        "payload": '{"type": "batch.completed"}',
        "next_attempt_at": utcnow(),
    }
    delivery = WebhookDelivery(batch_id=batch_id, message_id=message_id, **(fields | values))
    await webhooks_store.insert_delivery(session, delivery)
    assert delivery.id is not None
    return delivery.id


@dataclass(frozen=True)
class SentPass:
    """A pass laid out into one chunk: a pending attempt for each of its items."""

    batch_id: str
    pass_id: int
    number: int
    chunk_id: int
    items: dict[str, int]  # custom_id -> item id
    attempts: dict[str, int] = field(default_factory=dict)  # custom_id -> attempt id


async def send_pass(
    session: Session,
    batch_id: str,
    items: Mapping[str, int],
    *,
    kind: str = PassKind.PRIMARY,
    model: str = MODEL,
    tier: int | None = 0,
    strict: bool = False,
    sent_because: str = "first",
    hashes: Mapping[str, str] | None = None,
) -> SentPass:
    """The batch's next pass (`passes.insert`), one chunk (`chunks.insert`), pending attempts (`insert_rows`)."""
    pass_ = await passes_store.insert(session, batch_id, kind=kind, model=model, tier=tier, strict_mode=strict)
    assert pass_.id is not None
    chunk = Chunk(batch_id=batch_id, pass_id=pass_.id, chunk_index=0, line_count=len(items))
    await chunks_store.insert(session, [chunk])
    assert chunk.id is not None
    await attempts_store.insert_rows(
        session,
        [
            pending_row(item_id, pass_.id, chunk.id, tier=tier, sent_because=sent_because, request_hash=hash_)
            for custom_id, item_id in items.items()
            for hash_ in [(hashes or {}).get(custom_id)]
        ],
    )
    found = await session.execute(
        select(Item.custom_id, Attempt.id)
        .join(Attempt, col(Attempt.item_id) == col(Item.id))
        .where(col(Attempt.pass_id) == pass_.id)
    )
    attempts = {custom_id: int(attempt_id) for custom_id, attempt_id in found}
    return SentPass(batch_id, pass_.id, pass_.number, chunk.id, dict(items), attempts)


async def seed(
    sessions: Sessions,
    batch_id: str = "lb_one",
    custom_ids: Sequence[str] = CUSTOM_IDS,
    *,
    tenant: str = DEFAULT_TENANT,
    model: str = MODEL,
    strict: bool = False,
    hashes: Mapping[str, str] | None = None,
    **batch_fields: Any,
) -> SentPass:
    """A committed batch with its first pass sent: every item has a pending attempt in one chunk."""
    async with transaction(sessions) as session:
        items = await add_batch(session, batch_id, custom_ids, tenant=tenant, **batch_fields)
        return await send_pass(session, batch_id, items, model=model, strict=strict, hashes=hashes)


async def update_chunk(session: Session, chunk_id: int, **values: Any) -> None:
    """Set a chunk's columns as a test needs them (no step of the lifecycle writes them this way)."""
    await session.execute(sa_update(Chunk).where(col(Chunk.id) == chunk_id).values(**values))


def pending_row(item_id: int, pass_id: int, chunk_id: int | None, **values: Any) -> NewAttempt:
    """A row `attempts.insert_rows` takes."""
    row = NewAttempt(
        item_id=item_id,
        pass_id=pass_id,
        chunk_id=chunk_id,
        tier=0,
        sent_because="first",
        overrides_json=None,
        max_tokens_sent=None,
        reasoning_effort_sent=None,
        request_hash=None,
        status=AttemptStatus.PENDING,
    )
    return row._replace(**values)


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to, and the merged row it leaves its item with."""

    status: str = AttemptStatus.SUCCEEDED
    error_code: str | None = None
    input_tokens: int = 100
    output_tokens: int = 20
    cost_pico: int = 1_000
    content: str | None = '{"ok": true}'
    item_status: str | None = None  # the item's merged status; by default the attempt's
    next_tier: int | None = None
    next_reason: str | None = None


SUCCESS = Outcome()


def failure(code: str, **values: Any) -> Outcome:
    return Outcome(status=AttemptStatus.FAILED, error_code=code, content=None, **values)


def finished_row(attempt_id: int, outcome: Outcome, now: datetime) -> FinishedAttempt:
    """A row `attempts.finish` takes."""
    succeeded = outcome.status == AttemptStatus.SUCCEEDED
    return FinishedAttempt(
        status=outcome.status,
        error_code=outcome.error_code,
        error_message=None if succeeded else f"{outcome.error_code} happened",
        content=outcome.content,
        output_json=outcome.content if succeeded else None,
        finish_reason="stop" if succeeded else None,
        input_tokens=outcome.input_tokens,
        output_tokens=outcome.output_tokens,
        cached_input_tokens=0,
        cache_write_tokens=0,
        cost_pico=outcome.cost_pico,
        provider_request_id=f"req_{attempt_id}",
        finished_at=now,
        attempt_id=attempt_id,
    )


def merged_row(item_id: int, attempt_id: int | None, outcome: Outcome, changed_pass: int, now: datetime) -> MergedItem:
    """A row `items.merge` takes."""
    return MergedItem(
        status=outcome.item_status or outcome.status,
        deciding_attempt_id=attempt_id,
        next_tier=outcome.next_tier,
        next_reason=outcome.next_reason,
        next_overrides_json=None,
        error_code=None,
        error_message=None,
        changed_pass=changed_pass,
        updated_at=now,
        attempts_added=1,
        cost_added_pico=outcome.cost_pico,
        item_id=item_id,
    )


async def decide(
    session: Session, sent: SentPass, outcomes: Mapping[str, Outcome], *, now: datetime | None = None
) -> datetime:
    """Finish the pass's attempts of these items and merge their rows, as an ingest does; the time it wrote."""
    now = now or utcnow()
    await attempts_store.finish(
        session, [finished_row(sent.attempts[custom_id], outcome, now) for custom_id, outcome in outcomes.items()]
    )
    await items_store.merge(
        session,
        [
            merged_row(sent.items[custom_id], sent.attempts[custom_id], outcome, sent.number, now)
            for custom_id, outcome in outcomes.items()
        ],
    )
    return now


async def decide_all(sessions: Sessions, sent: SentPass, outcomes: Mapping[str, Outcome]) -> datetime:
    async with transaction(sessions) as session:
        return await decide(session, sent, outcomes)


async def all_rows(sessions: Sessions, model: type[Row], *order_by: Any) -> list[Row]:
    """Every row of a table, read afresh."""
    async with sessions() as session:
        result = await session.exec(select(model).order_by(*order_by).execution_options(populate_existing=True))
        return list(result.all())


async def one_row(sessions: Sessions, model: type[Row], key: Any) -> Row:
    async with sessions() as session:
        return await session.get_one(model, key, populate_existing=True)


async def items_by_custom_id(sessions: Sessions, batch_id: str) -> dict[str, Item]:
    async with sessions() as session:
        result = await session.exec(select(Item).where(Item.batch_id == batch_id))
        return {item.custom_id: item for item in result.all()}


async def scalar(sessions: Sessions, sql: str, **params: Any) -> Any:
    async with sessions() as session:
        return (await session.execute(text(sql), params)).scalar()


async def in_transaction(sessions: Sessions, work: Callable[[Session], Awaitable[T]]) -> T:
    """`work` in a transaction of its own, committed, as another request or worker would run it."""
    async with transaction(sessions) as session:
        return await work(session)


def meanwhile(sessions: Sessions, work: Callable[[Session], Awaitable[T]]) -> asyncio.Future[T]:
    """`work` started now in a transaction of its own (another worker at the same time)."""
    return asyncio.ensure_future(in_transaction(sessions, work))


async def still_waiting(task: asyncio.Future[Any], seconds: float = 0.3) -> bool:
    """Whether `task` is still blocked after `seconds` (on another transaction's lock)."""
    await asyncio.wait([task], timeout=seconds)
    return not task.done()
