"""Submitting a batch: check what the request asks for (tiers, params, schema, budget), then store the batch,
its items and its first pass in the caller's transaction (all or nothing)."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ulid import ULID

from service.batches.config import LifecycleConfig
from service.batches.lines import check_fits, spec_for
from service.batches.staging import StagedItems
from service.batches.tiers import check_model, resolve_cascade
from service.kit.problems import invalid
from service.models import Batch, PassKind
from service.pipeline.cost import pico_of_usd
from service.pipeline.expectations import effective_schema
from service.pipeline.lines import PassRequestSpec
from service.pipeline.schemas import schema_fingerprint
from service.pipeline.tiers import TierSpec
from service.pipeline.validation import output_limit, validate_output_schema, validate_params
from service.store import Session
from service.store import availability as availability_store
from service.store import batches as batches_store
from service.store import notifications as notifications_store
from service.store import passes as passes_store

logger = logging.getLogger(__name__)

WINDOW_PATTERN = re.compile(r"^(\d+)([hd])$")
MIN_WINDOW_HOURS, MAX_WINDOW_HOURS = 24, 7 * 24


@dataclass(frozen=True)
class NewBatch:
    """A submission as the lifecycle sees it, whatever the wire format it came in (the items are staged)."""

    params: dict[str, Any] = field(default_factory=dict)
    cascade: Sequence[Mapping[str, Any]] | None = None
    model: str | None = None
    fallback_model: str | None = None
    fallback_params: dict[str, Any] = field(default_factory=dict)
    strict: bool = True
    output_schema: dict[str, Any] | None = None
    completion_window: str = "24h"
    callback_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    budget_usd: Decimal | None = None
    reuse: bool | None = None
    fallback: bool = False


def new_batch_id() -> str:
    return f"lb_{str(ULID()).lower()}"


def check_window(window: str) -> None:
    match = WINDOW_PATTERN.match(window)
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1) if match else 0
    if not MIN_WINDOW_HOURS <= hours <= MAX_WINDOW_HOURS:
        raise invalid(f"completion_window {window!r} must be between 24h and 7d", field="completion_window")


def tier_field(new: NewBatch, index: int) -> str:
    if new.cascade is not None:
        return f"cascade[{index}].model"
    return "model" if index == 0 else "fallback_model"


def check_tier_fields(new: NewBatch) -> None:
    """422 for a field that would be ignored: `model`, `fallback_model` or `fallback_params` beside a `cascade`
    (which names every tier), `fallback_params` without ?fallback=true (no second tier to take them)."""
    if new.cascade is not None:
        for name, value in (
            ("model", new.model),
            ("fallback_model", new.fallback_model),
            ("fallback_params", new.fallback_params),
        ):
            if value:
                raise invalid(
                    f"{name} cannot be given with cascade, which names every tier and its params: put it in "
                    "the cascade",
                    field=name,
                )
    elif new.fallback_params and not new.fallback:
        raise invalid(
            "fallback_params are the second tier's params, and without ?fallback=true there is no second tier: "
            "add ?fallback=true or leave them out",
            field="fallback_params",
        )


def check_distinct_tiers(new: NewBatch, tiers: Sequence[TierSpec]) -> None:
    """A model twice in a cascade: its second tier would take the failures of the first and fail them again."""
    seen: dict[object, int] = {}
    for index, tier in enumerate(tiers):
        if tier.ref in seen:
            raise invalid(
                f"{tier_field(new, index)} {tier.name!r} is already tier {seen[tier.ref]}: each tier of a cascade "
                "is another model",
                field=tier_field(new, index),
            )
        seen[tier.ref] = index


def check_output_caps(config: LifecycleConfig, new: NewBatch, tiers: Sequence[TierSpec], staged: StagedItems) -> None:
    """422 for a max_completion_tokens (or max_tokens) above the cap of a tier's model, which that provider
    would refuse for every line: in a tier's params, else the batch's params or an item's body (the largest of
    them, as staging saw it)."""
    for index, tier in enumerate(tiers):
        cap = config.entry(tier.provider, tier.model).max_completion_tokens
        tier_params_field = f"cascade[{index}].params" if new.cascade is not None else "fallback_params"
        own = output_limit(tier.params)
        if own is not None and own[1] > cap:
            raise _over_cap(tier, f"{tier_params_field}.{own[0]}", own[1], cap)
        if own is not None and own[0] == "max_completion_tokens":
            continue  # it overrides the items' and the batch's
        batch_limit = output_limit(new.params)
        if batch_limit is not None and batch_limit[1] > cap:
            raise _over_cap(tier, f"params.{batch_limit[0]}", batch_limit[1], cap)
        largest = staged.largest_output
        if largest is not None and largest.tokens > cap:
            raise _over_cap(tier, f"items[{largest.position}].body.{largest.name}", largest.tokens, cap)


def _over_cap(tier: TierSpec, field_name: str, tokens: int, cap: int) -> Exception:
    return invalid(
        f"{field_name} is {tokens}, above the {cap} output tokens model {tier.name!r} allows (GET /models): its "
        "provider would refuse the request",
        field=field_name,
        maximum=cap,
    )


async def plan_tiers(session: Session, config: LifecycleConfig, new: NewBatch) -> tuple[list[TierSpec], list[str]]:
    """The batch's tiers and the warnings they bring (deprecated models); 422 for a model that cannot be used."""
    check_tier_fields(new)
    tiers = resolve_cascade(
        config,
        cascade=new.cascade,
        model=new.model,
        fallback_model=new.fallback_model,
        fallback_params=new.fallback_params,
        fallback=new.fallback,
    )
    availability = await availability_store.read(session)
    warnings = []
    for index, tier in enumerate(tiers):
        warning = check_model(config, tier.ref, tier_field(new, index), availability)
        if warning is not None:
            warnings.append(warning)
        params_field = f"cascade[{index}].params" if new.cascade is not None else "fallback_params"
        validate_params(tier.params, params_field)
    check_distinct_tiers(new, tiers)
    return tiers, warnings


@dataclass(frozen=True)
class CheckedBatch:
    """A submission that can run: its tiers, the lines' shape on each, and what to warn about."""

    tiers: list[TierSpec]
    specs: list[PassRequestSpec]
    warnings: list[str]


async def check_new_batch(
    session: Session, config: LifecycleConfig, new: NewBatch, staged: StagedItems
) -> CheckedBatch:
    """Everything submit refuses (422), without storing anything: params, schema, window, tiers, line sizes."""
    validate_params(new.params, "params")
    validate_params(new.fallback_params, "fallback_params")  # checked even when no fallback tier runs
    validate_output_schema(new.output_schema)
    check_window(new.completion_window)
    tiers, warnings = await plan_tiers(session, config, new)
    check_output_caps(config, new, tiers, staged)
    specs = [
        spec_for(
            config,
            provider=tier.provider,
            model=tier.model,
            params=new.params,
            pass_params=tier.params,
            output_schema=new.output_schema,
            strict=new.strict,
        )
        for tier in tiers
    ]
    await check_fits(
        config,
        specs,
        ((item.position, item.custom_id, item.body_json) for item in staged),
        budgeted=new.budget_usd is not None,
    )
    return CheckedBatch(tiers, specs, warnings)


async def submit(session: Session, config: LifecycleConfig, tenant: str, new: NewBatch, staged: StagedItems) -> Batch:
    """Check and store a new batch with its first pass (flushed, not committed: the caller commits)."""
    checked = await check_new_batch(session, config, new, staged)
    tiers, warnings = checked.tiers, checked.warnings
    for warning in warnings:
        logger.warning("submission from tenant %s: %s", tenant, warning)
    batch = Batch(
        id=new_batch_id(),
        tenant=tenant,
        tiers=[tier.as_json() for tier in tiers],
        strict_mode=new.strict,
        params=new.params,
        output_schema=new.output_schema,
        completion_window=new.completion_window,
        callback_url=new.callback_url,
        user_metadata=new.metadata,
        warnings=warnings,
        reuse=config.settings.reuse_results if new.reuse is None else new.reuse,
        budget_pico=pico_of_usd(new.budget_usd) if new.budget_usd is not None else None,
        schema_fingerprint=schema_fingerprint(effective_schema(new.output_schema, new.params)),
        item_count=staged.count,
        pending=staged.count,
    )
    count = await batches_store.insert_batch(
        session, batch, ((item.custom_id, item.body_json, item.metadata_json, item.own_format) for item in staged)
    )
    assert count == staged.count
    await notifications_store.announce_work(session)
    await passes_store.insert(
        session,
        batch.id,
        kind=PassKind.PRIMARY,
        provider=tiers[0].provider,
        model=tiers[0].model,
        tier=0,
        params=tiers[0].params,
        planned_items=count,
    )
    return batch
