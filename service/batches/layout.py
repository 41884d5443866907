"""Laying out a planned pass: each item's line is built once, and it either goes into a provider-batch chunk
(a pending attempt, and the line written to the chunk's spool file right away) or, with reuse on, takes the
answer an identical earlier request already got (a finished attempt, nothing sent).

Items that succeeded are never taken again: the first pass takes the items never sent, later passes the items
the cascade (or a retry) queued for them. With a budget, only the items whose worst case fits what is left are
sent; `pipeline/budgeting.py` decides which of the others wait for the next round (queued again as they were)
and which fail with `budget_exceeded`, and each chunk reserves its worst case as it is closed.

The work is done in groups, yielding to the event loop between them, so laying out a large pass never holds an
API in the same process for long.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from service.batches.chunks import budget
from service.batches.chunks.spool import layout_spool_path
from service.batches.config import LifecycleConfig
from service.batches.lines import ready_to_count, spec_of_pass
from service.batches.merging import merge_outcomes, replayed
from service.kit.clock import utcnow
from service.kit.cooperative import each, give_way
from service.kit.spooling import SPOOL_BUFFER_BYTES
from service.models import AttemptStatus, Batch, Chunk, ItemStatus, Pass, PassKind, PassStatus
from service.pipeline import failure_codes, routing
from service.pipeline.budgeting import BudgetPlan, Fit
from service.pipeline.catalogue import ModelEntry
from service.pipeline.chunking import ChunkPlanner
from service.pipeline.classify import unprocessed
from service.pipeline.lines import PassRequestSpec, line_id
from service.pipeline.requests import request_hash
from service.store import Session
from service.store import attempts as attempts_store
from service.store import batches as batches_store
from service.store import chunks as chunks_store
from service.store import items as items_store
from service.store import passes as passes_store
from service.store.attempts import NewAttempt
from service.store.items import BudgetWait

GROUP = 500  # items built, looked up and written per step; the event loop runs between steps


@dataclass
class _OpenChunk:
    row: Chunk
    row_id: int
    path: Path
    handle: IO[bytes]
    digest: Any = field(default_factory=hashlib.sha256)
    # Counted here and set on the row once it is full (a model attribute set per line costs more than the line).
    lines: int = 0
    bytes: int = 0
    worst_case_pico: int = 0


@dataclass
class _Layout:
    """The chunks of one pass as they fill up."""

    session: Session
    batch: Batch
    pass_: Pass
    spool_dir: Path
    planner: ChunkPlanner
    current: _OpenChunk | None = None

    async def add(self, line: bytes, worst_case_pico: int, custom_id: str) -> int:
        """Append a line; the id of the chunk it went into."""
        index, opens = self.planner.place(len(line), custom_id)
        if opens:
            await self.close()
        current = self.current or await self._open(index)
        current.handle.write(line)
        current.digest.update(line)
        current.lines += 1
        current.bytes += len(line)
        current.worst_case_pico += worst_case_pico
        return current.row_id

    async def _open(self, index: int) -> _OpenChunk:
        assert self.pass_.id is not None
        row = Chunk(batch_id=self.batch.id, pass_id=self.pass_.id, provider=self.pass_.provider, chunk_index=index)
        await chunks_store.insert(self.session, [row])
        path = layout_spool_path(self.spool_dir, self.batch.id, self.pass_.number, index)
        path.parent.mkdir(parents=True, exist_ok=True)
        assert row.id is not None
        handle = path.open("wb", buffering=SPOOL_BUFFER_BYTES)
        self.current = _OpenChunk(row=row, row_id=row.id, path=path, handle=handle)
        return self.current

    async def close(self) -> None:
        current, self.current = self.current, None
        if current is None:
            return
        current.handle.close()
        row = current.row
        row.line_count, row.byte_count, row.worst_case_pico = current.lines, current.bytes, current.worst_case_pico
        row.spool_sha256 = current.digest.hexdigest()
        if self.batch.budget_pico is not None:
            await budget.reserve_laid_out(self.session, self.batch.id, row)
        await chunks_store.save(self.session, row)

    def abort(self) -> None:
        if self.current is not None:
            self.current.handle.close()
            self.current.path.unlink(missing_ok=True)
            self.current = None


async def _items_of(session: Session, batch: Batch, pass_: Pass, after_position: int) -> list[Any]:
    if pass_.kind == PassKind.PRIMARY:
        return await items_store.first_pass_items(session, batch.id, after_position=after_position, limit=GROUP)
    return await items_store.queued_items(
        session,
        batch.id,
        tier=pass_.tier,
        retry=pass_.kind == PassKind.RETRY,
        after_position=after_position,
        limit=GROUP,
    )


async def budget_plan(session: Session, batch: Batch) -> BudgetPlan:
    """What a round's lay-outs may reserve: what is left of the batch's budget now."""
    return BudgetPlan.of(*await batches_store.budget_state(session, batch.id))


async def lay_out(session: Session, config: LifecycleConfig, batch: Batch, pass_: Pass, plan: BudgetPlan) -> int:
    """Create the chunks and attempts of `pass_`, write its lines, and mark it running (completed when nothing
    needs sending). Returns the number of items it took. `plan`: the round's budget (shared by its passes)."""
    assert pass_.id is not None
    spec = spec_of_pass(config, batch, pass_)
    entry = spec.entry
    limits = config.chunk_limits(pass_.provider)
    layout = _Layout(
        session,
        batch,
        pass_,
        Path(config.settings.spool_dir),
        ChunkPlanner(limits.max_lines, limits.max_bytes),
    )
    reasons: Counter[str] = Counter()
    strict_lines: list[bool] = []
    taken = reused_total = saved_total = unsent_total = 0
    waiting_before = plan.waiting
    after = -1
    try:
        while group := await _items_of(session, batch, pass_, after):
            after = group[-1].position
            if pass_.kind != PassKind.PRIMARY:  # in this pass now; a replayed failure may queue it again below
                await items_store.clear_queue(session, [row.id for row in group])
            reused, saved, unsent = await _lay_out_group(
                session, config, batch, pass_, spec, entry, layout, group, reasons, strict_lines, plan
            )
            taken += len(group)
            reused_total += reused
            unsent_total += unsent
            saved_total += saved
            await give_way()
        await layout.close()
    except BaseException:
        layout.abort()
        raise
    sent = taken - reused_total - unsent_total
    waited = plan.waiting - waiting_before
    if waited == taken and taken:  # every item waits for room: no pass to show for it
        await passes_store.delete_unused(session, pass_.id)
        return 0
    await items_store.after_bulk_load(session, taken)
    await passes_store.laid_out(
        session,
        pass_.id,
        status=PassStatus.RUNNING if sent else PassStatus.COMPLETED,
        sent_because=dict(reasons),
        strict_mode=bool(strict_lines and strict_lines[0]),
        items=taken - waited,
        reused=reused_total,
        saved_pico=saved_total,
    )
    if waited:
        await passes_store.set_planned_items(session, pass_.id, taken - waited)
    if saved_total:
        await batches_store.add_to_counters(session, batch.id, saved_pico=saved_total)
    return taken - waited


async def _lay_out_group(
    session: Session,
    config: LifecycleConfig,
    batch: Batch,
    pass_: Pass,
    spec: PassRequestSpec,
    entry: ModelEntry,
    layout: _Layout,
    group: Sequence[Any],
    reasons: Counter[str],
    strict_lines: list[bool],
    plan: BudgetPlan,
) -> tuple[int, int, int]:
    """One group of items: build, look up reuse, write or reuse, or leave unsent (waiting for budget, or over
    it). (reused count, what reuse saved, how many were not sent)."""
    assert pass_.id is not None
    pass_id, tier, tenant = pass_.id, pass_.tier, batch.tenant  # read once: ORM attributes are slow per row
    retry_pass, budgeted = pass_.kind == PassKind.RETRY, batch.budget_pico is not None
    if budgeted:
        await ready_to_count([spec])  # the worst cases count prompt tokens
    built_lines = []
    waits: list[BudgetWait] = []
    async for row in each(group):
        if plan.full():  # nothing would fit until this round's answers are in: not built now
            plan.wait()
            waits.append(BudgetWait(tier, row.next_reason, row.next_overrides_json, row.id))
            continue
        overrides_json = row.next_overrides_json
        overrides = orjson.loads(overrides_json) if overrides_json else None
        body = orjson.loads(row.body_json)
        built = spec.build(line_id(entry, row.custom_id, row.id), body, overrides)
        if not strict_lines:
            strict_lines.append(built.strict)
        hashed = request_hash(tenant, entry.provider, built.body, spec.expectation_of(body, row.own_format))
        built_lines.append((row, built, overrides_json if overrides else None, hashed))
    found: dict[str, attempts_store.Reusable] = {}
    if batch.reuse:
        since = utcnow() - timedelta(seconds=config.settings.reuse_max_age_seconds)
        hashes = [line[3] for line in built_lines]
        found = await attempts_store.reusable(session, tenant, hashes, since, sorted(routing.REPLAYABLE))
    pending: list[NewAttempt] = []
    reused_rows: list[tuple[Any, attempts_store.Reusable, NewAttempt]] = []
    refused: list[tuple[Any, NewAttempt, str]] = []
    async for row, built, overrides_json, hashed in each(built_lines):
        reason = routing.RETRY if retry_pass else row.next_reason or routing.FIRST
        attempt = NewAttempt(
            row.id,
            pass_id,
            None,
            tier,
            reason,
            overrides_json,
            built.max_completion_tokens,
            built.reasoning_effort,
            hashed,
            AttemptStatus.PENDING,
        )
        if hashed in found:
            source = found[hashed]
            reused_rows.append((row, source, attempt._replace(reused_from_attempt_id=source.attempt_id)))
            reasons[reason] += 1
            continue
        worst = budget.worst_case(entry, built) if budgeted else 0
        left = plan.left_pico or 0
        fit = plan.place(worst)
        if fit == Fit.WAIT:  # queued again as it was, for the next round
            waits.append(BudgetWait(tier, row.next_reason, row.next_overrides_json, row.id))
            continue
        reasons[reason] += 1
        if fit == Fit.REFUSE:
            refused.append((row, attempt, budget.item_refusal(batch.budget_pico or 0, worst, left)))
            continue
        pending.append(attempt._replace(chunk_id=await layout.add(built.line, worst, row.custom_id)))
    await attempts_store.insert_rows(session, pending)
    saved = 0
    if reused_rows:
        saved = await _reuse(session, config, batch, pass_, reused_rows)
    if waits:
        await _wait_for_budget(session, batch, pass_, waits)
    if refused:
        await _refuse(session, config, batch, pass_, refused)
    return len(reused_rows), saved, len(waits) + len(refused)


async def _wait_for_budget(session: Session, batch: Batch, pass_: Pass, waits: Sequence[BudgetWait]) -> None:
    """Items that wait for room in the budget are queued again for the next round (never-sent ones count as
    `retrying` from now on)."""
    await items_store.wait_for_budget(session, waits)
    if pass_.kind == PassKind.PRIMARY:
        await batches_store.add_to_counters(session, batch.id, pending=-len(waits), retrying=len(waits))


async def _refuse(
    session: Session,
    config: LifecycleConfig,
    batch: Batch,
    pass_: Pass,
    refused: Sequence[tuple[Any, NewAttempt, str]],
) -> None:
    """Items over budget with nothing in flight: an attempt each, never sent, failed with budget_exceeded (final),
    merged like any outcome (so a raised budget can send them again from where they were)."""
    ids = await attempts_store.insert_returning_ids(session, [attempt for _row, attempt, _message in refused])
    outcomes = [
        (
            _unsent_attempt(pass_, row, attempt_id, attempt),
            unprocessed(row.custom_id, failure_codes.BUDGET_EXCEEDED, message),
        )
        for (row, attempt, message), attempt_id in zip(refused, ids, strict=True)
    ]
    await merge_outcomes(session, config, batch, pass_, outcomes)


async def _reuse(
    session: Session,
    config: LifecycleConfig,
    batch: Batch,
    pass_: Pass,
    reused_rows: Sequence[tuple[Any, attempts_store.Reusable, NewAttempt]],
) -> int:
    """Attempts that take the outcome of an identical earlier request instead of being sent, at no cost, merged
    like any outcome (a replayed failure is routed on, where the earlier item's answer waits to be reused in
    turn). What they saved."""
    ids = await attempts_store.insert_returning_ids(session, [attempt for _r, _s, attempt in reused_rows])
    outcomes = [
        (_unsent_attempt(pass_, row, attempt_id, base), replayed(row.custom_id, source))
        for (row, source, base), attempt_id in zip(reused_rows, ids, strict=True)
    ]
    await merge_outcomes(session, config, batch, pass_, outcomes)
    return sum(source.cost_pico for _row, source, _base in reused_rows)


def _unsent_attempt(pass_: Pass, row: Any, attempt_id: int, attempt: NewAttempt) -> attempts_store.PendingAttempt:
    """An attempt that is settled at lay-out (refused or reused), as the merge sees one in flight."""
    return attempts_store.PendingAttempt(
        attempt_id=attempt_id,
        item_id=row.id,
        custom_id=row.custom_id,
        own_format=row.own_format,
        item_status=ItemStatus.PENDING if pass_.kind == PassKind.PRIMARY else ItemStatus.RETRYING,
        tier=attempt.tier,
        sent_because=attempt.sent_because,
        overrides_json=attempt.overrides_json,
        max_tokens_sent=attempt.max_tokens_sent,
        reasoning_effort_sent=attempt.reasoning_effort_sent,
    )
