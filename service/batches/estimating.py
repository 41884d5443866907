"""Estimating a submission's bill without sending or storing anything.

The submission is checked as submit checks it (the same 422s), each item's line is built for every tier as it
would be sent, its input tokens counted (with the model's real vocabulary where one is at hand offline), and the
cascade's flow priced from the tenant's history of each model (pipeline/estimate.py). With reuse, items whose
first-tier request already succeeded are counted as answered for free.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import orjson

from service.batches.config import LifecycleConfig
from service.batches.staging import StagedItems
from service.batches.submission import CheckedBatch, NewBatch, check_new_batch
from service.kit.clock import utcnow
from service.kit.cooperative import each
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

GROUP = 500  # items counted between yields to the event loop
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


async def _count_lines(
    config: LifecycleConfig, checked: CheckedBatch, staged: StagedItems, tenant: str
) -> tuple[list[_Counts], list[Method], list[str]]:
    """Per tier: input tokens, output budgets and strict lines of every item's line; how tokens were counted;
    the first tier's request hashes (what reuse would look up)."""
    counts = [_Counts() for _ in checked.tiers]
    methods: list[Method] = []
    hashes: list[str] = []
    async for item in each(staged, GROUP):
        body = orjson.loads(item.body_json)
        known: dict[str, int] = {}  # prompt texts' tokens by vocabulary (or model): counted once per item
        for index, spec in enumerate(checked.specs):
            entry = spec.entry
            built = spec.build(item.custom_id, body)
            family = entry.tokenizer or str(entry.ref)
            if family not in known:
                text = "\n".join(prompt_texts(built.request))
                known[family] = count_text(entry.tokenizer, text, upper_bound=False).tokens
            counted = count_input_tokens(
                entry.tokenizer, built.request, upper_bound=False, message_tokens=known[family]
            )
            if counted.method not in methods:
                methods.append(counted.method)
            cap = entry.max_completion_tokens
            max_tokens = min(built.max_completion_tokens or cap, cap)
            tally = counts[index]
            tally.input_tokens += counted.tokens
            tally.max_output_tokens += max_tokens
            tally.raised_max_output_tokens += min(max_tokens * 2, cap)
            tally.strict_lines += built.strict
            if index == 0:
                expectation = spec.expectation_of(body, item.own_format)
                hashes.append(request_hash(tenant, entry.provider, built.body, expectation))
    return counts, methods, hashes


def _methods_text(methods: list[Method]) -> str:
    return "; ".join(METHOD_TEXTS[method] for method in methods) or METHOD_TEXTS["ratio"]
