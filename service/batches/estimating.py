"""Estimating a submission's bill without sending or storing anything.

The submission is checked as submit checks it (the same 422s), each item's line is built for every tier as it
would be sent, its input tokens counted (with the model's real vocabulary where one is at hand offline), and the
cascade's flow priced from the tenant's history of each model (pipeline/estimate.py). With reuse, items whose
first-tier request already succeeded are counted as answered for free.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import orjson

from service.batches.config import LifecycleConfig
from service.batches.lines import ready_to_count
from service.batches.staging import StagedItem, StagedItems
from service.batches.submission import CheckedBatch, NewBatch, check_new_batch
from service.kit.clock import utcnow
from service.kit.cooperative import Turns
from service.pipeline import estimate as forecasting
from service.pipeline.cost import pico_of_usd
from service.pipeline.expectations import effective_schema
from service.pipeline.requests import request_hash
from service.pipeline.routing import REPLAYABLE
from service.pipeline.schemas import schema_fingerprint
from service.pipeline.tokens import (
    METHOD_TEXTS,
    Method,
    count_input_tokens,
    count_text,
    prompt_texts,
)
from service.store import Session
from service.store import attempts as attempts_store
from service.store import history as history_store

# An item body this large is counted in a thread (~50 ms of work and more). Not smaller ones: a thread counting
# while the event loop runs makes both wait for the GIL, which held /healthz longer than counting in place did.
THREAD_BYTES = 2 * 1024 * 1024
REUSE_LOOKUP = 1000


@dataclass
class _Counts:
    input_tokens: int = 0
    max_output_tokens: int = 0
    raised_max_output_tokens: int = 0
    strict_lines: int = 0


@dataclass(frozen=True)
class EstimateResult:
    forecast: forecasting.Forecast
    counted_with: str  # how input tokens were counted
    budget_pico: int | None


async def estimate(
    session: Session, config: LifecycleConfig, tenant: str, new: NewBatch, staged: StagedItems
) -> EstimateResult:
    checked = await check_new_batch(session, config, new, staged)
    counts, methods, first_hashes = await _count_lines(config, checked, staged, tenant)
    reusable = 0
    reuse = config.settings.reuse_results if new.reuse is None else new.reuse
    if reuse and first_hashes:
        since = utcnow() - timedelta(seconds=config.settings.reuse_max_age_seconds)
        for start in range(0, len(first_hashes), REUSE_LOOKUP):
            part = first_hashes[start : start + REUSE_LOOKUP]
            found = await attempts_store.reusable_hashes(session, tenant, part, since, sorted(REPLAYABLE))
            reusable += sum(1 for hashed in first_hashes[start : start + REUSE_LOOKUP] if hashed in found)
    fingerprint = schema_fingerprint(effective_schema(new.output_schema, new.params))
    workloads = []
    for index, (tier, tally) in enumerate(zip(checked.tiers, counts, strict=True)):
        entry = config.entry(tier.provider, tier.model)
        strict = tally.strict_lines * 2 > staged.count  # how most of the tier's lines go out
        history = await _history(session, tenant, tier.provider, tier.model, strict, fingerprint)
        mean_max = tally.max_output_tokens / staged.count if staged.count else 0.0
        workloads.append(
            forecasting.TierWorkload(
                tier=index,
                entry=entry,
                input_tokens=tally.input_tokens,
                max_output_tokens=tally.max_output_tokens,
                raised_max_output_tokens=tally.raised_max_output_tokens,
                outcomes=forecasting.outcomes(history, entry, strict=strict, mean_max_tokens=mean_max),
            )
        )
    budget = pico_of_usd(new.budget_usd) if new.budget_usd is not None else None
    return EstimateResult(forecasting.forecast(staged.count, reusable, workloads), _methods_text(methods), budget)


async def _history(
    session: Session, tenant: str, provider: str, model: str, strict: bool, fingerprint: str | None
) -> forecasting.TierHistory:
    """The same schema's history when there is enough of it, else the model's whatever the schema."""
    if fingerprint is not None:
        same_schema = forecasting.tier_history(
            await history_store.outcome_groups(
                session, tenant=tenant, provider=provider, model=model, strict=strict, schema_fingerprint=fingerprint
            )
        )
        if same_schema.first_attempts >= forecasting.MIN_HISTORY_ATTEMPTS:
            return same_schema
    return forecasting.tier_history(
        await history_store.outcome_groups(
            session, tenant=tenant, provider=provider, model=model, strict=strict, schema_fingerprint=None
        )
    )


@dataclass(frozen=True)
class _LineCount:
    input_tokens: int
    method: Method
    max_tokens: int
    raised_max_tokens: int
    strict: bool


def _count_item(checked: CheckedBatch, item: StagedItem, tenant: str) -> tuple[list[_LineCount], str]:
    """One item's line on every tier, counted; and its first-tier request hash (what reuse would look up)."""
    body = orjson.loads(item.body_json)
    known: dict[str, int] = {}  # prompt texts' tokens by vocabulary (or model): counted once per item
    lines = []
    first_hash = ""
    for index, spec in enumerate(checked.specs):
        entry = spec.entry
        built = spec.build(item.custom_id, body)
        family = entry.tokenizer or str(entry.ref)
        if family not in known:
            text = "\n".join(prompt_texts(built.request))
            known[family] = count_text(entry.tokenizer, text, upper_bound=False).tokens
        counted = count_input_tokens(entry.tokenizer, built.request, upper_bound=False, message_tokens=known[family])
        cap = entry.max_completion_tokens
        max_tokens = min(built.max_completion_tokens or cap, cap)
        lines.append(_LineCount(counted.tokens, counted.method, max_tokens, min(max_tokens * 2, cap), built.strict))
        if index == 0:
            expectation = spec.expectation_of(body, item.own_format)
            first_hash = request_hash(tenant, entry.provider, built.body, expectation)
    return lines, first_hash


async def _count_lines(
    config: LifecycleConfig, checked: CheckedBatch, staged: StagedItems, tenant: str
) -> tuple[list[_Counts], list[Method], list[str]]:
    """Per tier: input tokens, output budgets and strict lines of every item's line; how tokens were counted;
    the first tier's request hashes (what reuse would look up). Items cost from microseconds to tens of
    milliseconds each: the loop gives way by time (Turns), and an item over THREAD_BYTES is counted in a thread
    (the o200k counter lets the event loop run meanwhile)."""
    await ready_to_count(checked.specs)
    counts = [_Counts() for _ in checked.tiers]
    methods: list[Method] = []
    hashes: list[str] = []
    turns = Turns()
    for item in staged:
        if len(item.body_json) > THREAD_BYTES:
            lines, first_hash = await asyncio.to_thread(_count_item, checked, item, tenant)
        else:
            lines, first_hash = _count_item(checked, item, tenant)
        for tally, line in zip(counts, lines, strict=True):
            if line.method not in methods:
                methods.append(line.method)
            tally.input_tokens += line.input_tokens
            tally.max_output_tokens += line.max_tokens
            tally.raised_max_output_tokens += line.raised_max_tokens
            tally.strict_lines += line.strict
        hashes.append(first_hash)
        await turns.check()
    return counts, methods, hashes


def _methods_text(methods: list[Method]) -> str:
    return "; ".join(METHOD_TEXTS[method] for method in methods) or METHOD_TEXTS["ratio"]
