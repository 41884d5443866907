"""Submitting a batch: check what the request asks for, then store the batch, its items and its first pass
in the caller's transaction (all or nothing)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ulid import ULID

from service.batches.config import LifecycleConfig
from service.batches.lines import check_fits, spec_for
from service.kit.problems import invalid
from service.models import Batch, PassKind
from service.pipeline.validation import validate_items, validate_output_schema, validate_params
from service.store import Session
from service.store import batches as batches_store
from service.store import passes as passes_store

WINDOW_PATTERN = re.compile(r"^(\d+)([hd])$")
MIN_WINDOW_HOURS, MAX_WINDOW_HOURS = 24, 7 * 24


@dataclass(frozen=True)
class NewBatch:
    """A submission as the lifecycle sees it, whatever the wire format it came in."""

    items: Sequence[Mapping[str, Any]]  # {"custom_id": str, "body": {...}}
    params: dict[str, Any] = field(default_factory=dict)
    model: str | None = None
    fallback_model: str | None = None
    fallback_params: dict[str, Any] = field(default_factory=dict)
    output_schema: dict[str, Any] | None = None
    completion_window: str = "24h"
    callback_url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    fallback: bool = False


def new_batch_id() -> str:
    return f"lb_{str(ULID()).lower()}"


def check_window(window: str) -> None:
    match = WINDOW_PATTERN.match(window)
    hours = int(match.group(1)) * (24 if match.group(2) == "d" else 1) if match else 0
    if not MIN_WINDOW_HOURS <= hours <= MAX_WINDOW_HOURS:
        raise invalid(f"completion_window {window!r} must be between 24h and 7d", field="completion_window")


def check_priced(config: LifecycleConfig, model: str, field: str) -> None:
    if not config.prices.has(model):
        raise invalid(
            f"no batch price is configured for model {model!r}; add it to MODEL_PRICES so costs can be shown",
            field=field,
        )


async def submit(session: Session, config: LifecycleConfig, new: NewBatch) -> Batch:
    """Check and store a new batch with its first pass (flushed, not committed: the caller commits)."""
    validate_items(new.items)
    validate_params(new.params, "params")
    validate_params(new.fallback_params, "fallback_params")
    validate_output_schema(new.output_schema)
    check_window(new.completion_window)
    model = new.model or config.settings.primary_model
    fallback_model = new.fallback_model or config.settings.fallback_model
    check_priced(config, model, "model")
    if new.fallback:
        check_priced(config, fallback_model, "fallback_model")
    pairs = [(item["custom_id"], item["body"]) for item in new.items]
    check_fits(
        config, spec_for(config, model=model, params=new.params, pass_params={}, output_schema=new.output_schema), pairs
    )
    if new.fallback:
        fallback_spec = spec_for(
            config,
            model=fallback_model,
            params=new.params,
            pass_params=new.fallback_params,
            output_schema=new.output_schema,
        )
        check_fits(config, fallback_spec, pairs)
    batch = Batch(
        id=new_batch_id(),
        model=model,
        fallback_model=fallback_model,
        fallback_enabled=new.fallback,
        params=new.params,
        fallback_params=new.fallback_params,
        output_schema=new.output_schema,
        completion_window=new.completion_window,
        callback_url=new.callback_url,
        user_metadata=new.metadata,
        item_count=len(pairs),
    )
    await batches_store.insert_batch(session, batch, pairs)
    await passes_store.insert(session, batch.id, kind=PassKind.PRIMARY, model=model, params={})
    return batch
